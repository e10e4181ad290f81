"""What a high-latitude J-PAS field holds: stars, galaxies and QSOs down to r ~ 24.

Counts come from published models, tabulated once per :class:`PopulationParams`
on cells of 0.01 mag (and 0.01 in z); sampling draws Poisson totals, picks cells
by their expected counts and places objects uniformly in them, so
:func:`cumulative_counts` is the exact CDF of what :func:`sample_population` draws.
Magnitudes are AB, free of Galactic dust (E(B-V) ~ 0.01 in AEGIS).

* QSOs: the PLE+LEDE luminosity function of Palanque-Delabrouille et al. (2016,
  A&A 587, A41; PD16) in ``M_g(z=2)``, over Planck18 comoving volume.
* Galaxies: counts from COSMOS2020 (Weaver et al. 2022, ApJS 258, 11), type and
  redshift from the Benitez (2000, ApJ 536, 571) BPZ prior, sizes from the
  Shen et al. (2003, MNRAS 343, 978) size-luminosity relations.
* Stars: Bahcall & Soneira (1980, ApJS 44, 73) luminosity function in the
  Juric et al. (2008, ApJ 673, 864) thin disc + thick disc + halo, integrated
  along the line of sight of AEGIS (l, b) = (96.6, 59.8) deg.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from astropy.cosmology import Planck18
from scipy import special

from jpasbatch.physics.filters import jpas
from jpasbatch.physics.igm import igm_transmission

CLASSES = ("STAR", "GALAXY", "QSO_LOW", "QSO_HIGH")
#: QSO_HIGH is z >= 2.1, where Lyman alpha enters the J-PAS blue bands (miniJPAS QSO III).
QSO_SPLIT_Z = 2.1
#: Point-like below this half-light radius: at the ~1" FWHM of miniJPAS r, a Gaussian
#: source of r_e 0.2" is 8 % broader than the PSF (r_e 0.5"), too little for CLASS_STAR.
POINTLIKE_HALF_LIGHT_ARCSEC = 0.2
_DM, _DZ = 0.01, 0.01  # magnitude and redshift cell sizes
_PD16_PLE_LEDE = (-22.25, -5.93, -3.89, -1.47, 1.59, -0.36, -0.46, -0.06, -0.14, 0.32)
#: Weaver+2022 Table 2 (The Farmer): log10 galaxies deg^-2 mag^-1 at i = 19.25, 19.75, ...
_COSMOS2020_I = (3.01, 3.23, 3.44, 3.64, 3.85, 4.03, 4.21, 4.38, 4.54, 4.71, 4.86, 4.97, 5.08)
#: Benitez (2000) Table 1 (BPZ "hdfn_gen" values), types (E/S0, Sbc+Scd, Irr) in I814:
#: p(z|T,m) ~ z^a exp[-(z/zm)^a], zm = z0 + km (m - 20); p(T|m) = f exp[-k (m - 20)].
_BPZ_A, _BPZ_Z0, _BPZ_KM = (2.465, 1.806, 0.906), (0.431, 0.390, 0.0626), (0.0913, 0.0636, 0.123)
_BPZ_F, _BPZ_K = (0.35, 0.50), (0.450, 0.147)
_GALAXY_TYPES = ("early", "spiral", "starburst")
#: f_nu ~ nu^alpha power laws whose K_r(z = 0.5) is ~0.9, 0.45, 0.1 mag, roughly the
#: E, Sbc and Im values of Fukugita et al. (1995, PASP 107, 945); used only for sizes.
_K_ALPHA = (-3.0, -2.0, -1.2)
#: Size growth at fixed mass, R ~ (1+z)^eta: early -1.48, late -0.75 (van der Wel+2014).
_SIZE_ETA = (-1.48, -0.75, -0.75)
#: Main-sequence knots: M_V (Pecaut & Mamajek 2013 for B0 B5 A0 F0 G0 K0 M0 M4 M6)
#: and SDSS g - r (rounded from the Covey et al. 2007 stellar locus).
_MS_MV = (-6.0, -3.9, -1.1, 1.1, 2.5, 4.4, 5.9, 8.9, 12.7, 16.5)
_MS_GR = (-0.45, -0.45, -0.35, -0.25, 0.18, 0.40, 0.62, 1.35, 1.50, 1.60)
_TYPE_EDGES, _TYPES = (-3.9, 1.1, 2.5, 4.4, 5.9, 8.9), ("O", "B", "A", "F", "G", "K", "M")


@dataclass(frozen=True)
class PopulationParams:
    """Population model of one world; worlds share these priors and may perturb them.

    Attributes
    ----------
    r_max, r_min
        Magnitude range simulated (true rSDSS AB).
    qso_z_min, qso_z_max, galaxy_z_min, galaxy_z_max
        Redshift ranges (the emulator's templates stop at z = 6 and 1.6).
    qso_mg_faint
        Faintest ``M_g(z=2)`` counted as a QSO: -18 reproduces PD16's Table 7 counts
        at z < 1 within ~15 % (a brighter cut empties the z < 1 faint end).
    qso_lf
        PD16 PLE+LEDE fit (Table 4 of arXiv:1509.05607, as transcribed in HorizonGRound's
        ``eBOSS_QSO_LF_PLE+LEDE_model_fits.txt``): M*_g(0), log Phi*(0) [Mpc^-3
        mag^-1], alpha (bright), beta (faint), k1, k2 (PLE, z < 2.2), c1a, c1b, c2, c3
        (LEDE, z > 2.2; c3 > 0 flattens the bright end).
    qso_alpha_nu
        Continuum f_nu ~ nu^alpha for the K-correction and g - r (that of Richards et
        al. 2006). PD16's empirical K(z) (their Fig. 9) dims z > 3 QSOs in g; the mean
        Inoue+2014 IGM does the same here. Emission lines are left out.
    galaxy_r_minus_i
        Mean r - i of r ~ 20-24 galaxies: shifts the i-band counts and gives the
        I814 magnitude of the BPZ prior.
    galactic_l, galactic_b
        Line of sight, degrees (AEGIS / miniJPAS).
    thick_fraction, thick_scale_height
        Thick over thin disc at the Sun, and thick-disc scale height (pc): 0.04 and
        900 pc (Bland-Hawthorn & Gerhard 2016, ARA&A 54, 529; Juric+2008 fit 0.12).
    halo_fraction
        Halo over disc at the Sun: 1/800 (Bahcall & Soneira 1980; estimates span
        ~1/1000-1/200). Juric's 0.12 and 1/200 give 4500 stars deg^-2 at g < 21 with
        this LF, twice the SDSS count at 49 < |b| < 64 (2080, Chen et al. 2001, ApJ
        553, 184); these defaults give 1950.
    galaxy_size_scale, qso_scale, galaxy_scale, star_scale
        Factors on galaxy sizes and on the counts of each class.
    """

    r_max: float = 24.0
    r_min: float = 15.0
    qso_z_min: float = 0.1
    qso_z_max: float = 5.0
    qso_mg_faint: float = -18.0
    qso_lf: tuple[float, ...] = _PD16_PLE_LEDE
    qso_alpha_nu: float = -0.5
    galaxy_z_min: float = 0.01
    galaxy_z_max: float = 1.5
    galaxy_r_minus_i: float = 0.4
    galaxy_size_scale: float = 1.0
    galactic_l: float = 96.6
    galactic_b: float = 59.8
    thick_fraction: float = 0.04
    thick_scale_height: float = 900.0
    halo_fraction: float = 1 / 800
    qso_scale: float = 1.0
    galaxy_scale: float = 1.0
    star_scale: float = 1.0


def _qso_lf(mg: np.ndarray, z: np.ndarray, p: PopulationParams) -> np.ndarray:
    """PD16 (arXiv eqs. 6-9): double power law, PLE below z_p = 2.2, LEDE above; Mpc^-3 mag^-1."""
    m0, lphi0, alpha, beta, k1, k2, c1a, c1b, c2, c3 = p.qso_lf
    zp, dz, low = 2.2, z - 2.2, z <= 2.2
    m_zp = m0 - 2.5 * (k1 * zp + k2 * zp**2)  # continuity at z_p
    mstar = np.where(low, m0 - 2.5 * (k1 * z + k2 * z**2), m_zp + c2 * dz)
    lphi = np.where(low, lphi0, lphi0 + c1a * dz + c1b * dz**2)
    alpha = np.where(low, alpha, alpha + c3 * dz)
    x = 0.4 * (mg - mstar)
    phi = 10**lphi / (10 ** ((alpha + 1) * x) + 10 ** ((beta + 1) * x))
    return np.where(mg <= p.qso_mg_faint, phi, 0.0)


@cache
def _qso_colours(alpha_nu: float, z_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Redshift grid, K_g(z) - K_g(2) and g - r of a power-law QSO behind the mean IGM."""
    z = np.arange(0.0, z_max + 2 * _DZ, _DZ)
    mags = []
    for band in (jpas()["gSDSS"], jpas()["rSDSS"]):
        lam, w = band.wavelength, band.response / band.wavelength  # AB photon weights
        f_nu = lam ** (-alpha_nu)
        trans = np.trapezoid(igm_transmission(lam, z) * f_nu * w, lam, axis=1)
        mags.append(-2.5 * np.log10(trans / np.trapezoid(w, lam)))
    # PD16's M_g(z=2) is K-corrected to z = 2 (the g band at rest 1590 A)
    k_g = -2.5 * (1 + alpha_nu) * np.log10((1 + z) / 3) + mags[0] - np.interp(2.0, z, mags[0])
    return z, k_g, mags[0] - mags[1]


def _qso_table(p: PopulationParams, band: str, m_edges: np.ndarray) -> tuple[np.ndarray, ...]:
    """Expected QSOs per deg^2 in cells (z, m) of the apparent ``band`` ('g' or 'r')."""
    # the class split is a cell edge, so QSO_LOW / QSO_HIGH counts are exact
    z_edges = np.union1d(np.arange(p.qso_z_min, p.qso_z_max + _DZ / 2, _DZ).round(10), QSO_SPLIT_Z)
    z_edges = z_edges[(z_edges >= p.qso_z_min) & (z_edges <= p.qso_z_max)]
    zc, mc = (z_edges[1:] + z_edges[:-1]) / 2, (m_edges[1:] + m_edges[:-1]) / 2
    zg, k_g, g_r = _qso_colours(p.qso_alpha_nu, p.qso_z_max)
    # M_g(z=2) = g - DM - K_g, with g = r + (g - r)
    to_mg = (np.interp(zc, zg, g_r) if band == "r" else 0.0) - np.interp(zc, zg, k_g)
    dist_mod, d_a = _distances(zc)
    mg = mc[None, :] + (to_mg - dist_mod)[:, None]
    # dV / dz dOmega = (c / H) D_M^2, per deg^2
    dv = 299792.458 / Planck18.H(zc).value * (d_a * (1 + zc)) ** 2 * (np.pi / 180) ** 2
    cells = _qso_lf(mg, zc[:, None], p) * (dv * np.diff(z_edges))[:, None] * np.diff(m_edges)
    return z_edges, p.qso_scale * cells


def qso_counts_g(
    g_max: float, area_deg2: float = 1.0, params: PopulationParams | None = None
) -> float:
    """Expected QSOs brighter than ``g_max`` (PD16 LF integrated in g, any r)."""
    p = params or PopulationParams()
    return float(area_deg2 * _qso_table(p, "g", np.arange(10.0, g_max + _DM / 2, _DM))[1].sum())


def galaxy_dn_dm(r: np.ndarray, params: PopulationParams | None = None) -> np.ndarray:
    """Galaxies deg^-2 mag^-1 at r: Weaver+2022 i counts at i = r - (r - i), log-linear
    between bin centres and extrapolated with the end slopes (0.44 bright, 0.22 faint)."""
    p = params or PopulationParams()
    i = np.asarray(r, float) - p.galaxy_r_minus_i
    x, y = 19.25 + 0.5 * np.arange(len(_COSMOS2020_I)), np.array(_COSMOS2020_I)
    slope = np.where(i < x[0], (y[1] - y[0]) / 0.5, np.where(i > x[-1], (y[-1] - y[-2]) / 0.5, 0))
    edge = np.where(i < x[0], x[0], np.where(i > x[-1], x[-1], i))
    return p.galaxy_scale * 10 ** (np.interp(edge, x, y) + slope * (i - edge))


def _bpz(r: np.ndarray, p: PopulationParams) -> tuple[np.ndarray, np.ndarray]:
    """Type fractions (N, 3) and z_m (N, 3) of the BPZ prior at I814 = r - (r - i).

    Brighter than m = 20 the type fractions stay at their m = 20 values (as in BPZ) but
    z_m goes on falling (floor 0.02), so that r ~ 17 galaxies sit at z ~ 0.1-0.2."""
    dm = np.asarray(r)[:, None] - p.galaxy_r_minus_i - 20.0
    f = np.array(_BPZ_F) * np.exp(-np.array(_BPZ_K) * np.maximum(dm, 0.0))
    frac = np.concatenate([f, 1 - f.sum(1, keepdims=True)], axis=1)
    return frac, np.maximum(np.array(_BPZ_Z0) + np.array(_BPZ_KM) * dm, 0.02)


def _z_cdf(z: np.ndarray, zm: np.ndarray, a: np.ndarray) -> np.ndarray:
    """CDF of p(z) ~ z^a exp[-(z/zm)^a]: (z/zm)^a is Gamma(1 + 1/a) distributed."""
    return special.gammainc(1 + 1 / a, (z / zm) ** a)


def _log_size(r, z, t, p: PopulationParams) -> tuple[np.ndarray, np.ndarray]:
    """Median ln(half-light radius / arcsec) and its lognormal sigma for type index t.

    Shen+2003 Table 1 (Petrosian r, row "Figure 4"), eqs. 14-16: early
    log R = -0.4 a M + b (a 0.60, b -4.63); late log R = -0.4 al M + (be - al)
    log[1 + 10^(-0.4 (M - M0))] + ga (al 0.21, be 0.53, ga -1.31, M0 -20.52), R in kpc;
    sigma_lnR = s2 + (s1 - s2) / [1 + 10^(-0.8 (M - M0))] with the late-type s1 0.48,
    s2 0.25 for both. Grown with (1+z)^eta (van der Wel+2014) at fixed luminosity.
    """
    t = np.asarray(t)
    dist_mod, d_a = _distances(z)
    mag = r - dist_mod + 2.5 * (1 + np.array(_K_ALPHA)[t]) * np.log10(1 + z)
    late = -0.4 * 0.21 * mag + 0.32 * np.log10(1 + 10 ** (-0.4 * (mag + 20.52))) - 1.31
    log_kpc = np.where(t == 0, -0.4 * 0.60 * mag - 4.63, late)
    sigma = 0.25 + 0.23 / (1 + 10 ** (-0.8 * (mag + 20.52)))
    ln_r = (log_kpc * np.log(10) + np.array(_SIZE_ETA)[t] * np.log1p(z)
            + np.log(206264.806 * p.galaxy_size_scale / 1e3 / d_a))  # fmt: skip
    return ln_r, sigma


@cache
def _z_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.geomspace(1e-3, 6.5, 2000)
    return z, Planck18.distmod(z).value, Planck18.angular_diameter_distance(z).value


def _distances(z) -> tuple[np.ndarray, np.ndarray]:
    """Planck18 distance modulus and angular-diameter distance (Mpc), interpolated."""
    zt, dm, da = _z_table()
    return np.interp(z, zt, dm), np.interp(z, zt, da)


def _star_components(mv: np.ndarray, d_pc: np.ndarray, p: PopulationParams) -> np.ndarray:
    """Stellar density along the line of sight over the local one, shape (M_V, distance).

    Juric+2008 (Table 10): discs ~ exp(-R/L - |Z|/H), R_sun 8000 pc, Z_sun 25 pc, thin
    L 2600, H 300 pc, thick L 3600 pc; halo ~ (R_sun / sqrt(R^2 + (Z/q)^2))^n, q 0.64,
    n 2.77, steepening to n 4.6 beyond 27 kpc (Deason et al. 2011, MNRAS 416, 2903).
    Young thin-disc stars keep the Bahcall & Soneira (1980) scale height, 90 pc at
    M_V < 2.3 to 300 pc at M_V = 5.1; thick disc and halo stop at their turn-off,
    M_V = 3.5 (their giants are neglected).
    """
    lr, br = np.radians(p.galactic_l), np.radians(p.galactic_b)
    x, y = 8000.0 - d_pc * np.cos(br) * np.cos(lr), d_pc * np.cos(br) * np.sin(lr)
    rr, zz = np.hypot(x, y), d_pc * np.sin(br) + 25.0

    def disc(scale_l, scale_h):
        return np.exp((8000.0 - rr) / scale_l - (np.abs(zz) - 25.0) / scale_h)

    r_halo = np.hypot(rr, zz / 0.64)
    halo = (8000.0 / r_halo) ** 2.77 * np.minimum(1.0, 27e3 / r_halo) ** (4.6 - 2.77)
    old = (mv >= 3.5)[:, None]
    h_thin = np.interp(mv, [2.3, 5.1], [90.0, 300.0])[:, None]
    thick = p.thick_fraction * disc(3600.0, p.thick_scale_height)
    local = 1 + old * (p.thick_fraction + p.halo_fraction)
    return (disc(2600.0, h_thin) + old * (thick + p.halo_fraction * halo)) / local


def _star_table(p: PopulationParams, r_edges: np.ndarray) -> np.ndarray:
    """Expected stars per deg^2 in cells (type, r) for the 8 types O..M, WD."""
    rc = (r_edges[1:] + r_edges[:-1]) / 2
    mv = np.arange(-6.0, 16.5, 0.05) + 0.025
    # V - r = 0.41 (g - r) - 0.01 (Jester et al. 2005, stars); white dwarfs g - r ~ 0
    mr_ms = mv - (0.41 * np.interp(mv, _MS_MV, _MS_GR) - 0.01)
    # WD LF: ~ 10^(0.4 M_V) over 10 < M_V < 15.5, 4.6e-3 pc^-3 in all (Harris et al. 2006)
    wd = np.where(mv > 10.0, 4.6e-3 * 0.4 * np.log(10) * 10 ** (0.4 * (mv - 15.5)), 0.0)
    # dN = LF dM_V rho d^2 dd dOmega, with dd = d ln(10) / 5 dr at fixed M_V
    omega = (np.pi / 180) ** 2 * 0.05 * np.log(10) / 5
    out = np.zeros((len(_TYPES) + 1, len(rc)))
    types = np.searchsorted(_TYPE_EDGES, mv)
    # Bahcall & Soneira (1980) eq. 2 LF (pc^-3 mag^-1): n* 10^(bM) / [1 + 10^(-(a - b)
    # d (M - M*))]^(1/d), n* 4.03e-3, M* 1.28, a 0.74, b 0.04, 1/d 3.40, -6 < M_V < 16.5
    ms = 4.03e-3 * 10 ** (0.04 * mv) / (1 + 10 ** (-0.70 / 3.40 * (mv - 1.28))) ** 3.40
    for lf, mr, rows in ((ms, mr_ms, types), (wd, mv + 0.01, np.full(mv.size, 7))):
        d = 10 ** ((rc[None, :] - mr[:, None]) / 5 + 1)
        dens = lf[:, None] * _star_components(mv, d, p) * d**3 * omega * np.diff(r_edges)
        np.add.at(out, rows, dens)
    return p.star_scale * out


@cache
def _tables(p: PopulationParams) -> dict[str, np.ndarray]:
    """Per-deg^2 expected counts on the cells the sampler draws from: (type, r), (1, r)
    and (z, r) for stars, galaxies and QSOs, with the r and z cell edges."""
    tab = {"r_edges": np.linspace(p.r_min, p.r_max, round((p.r_max - p.r_min) / _DM) + 1)}
    tab["z_edges"], tab["QSO"] = _qso_table(p, "r", tab["r_edges"])
    tab["STAR"] = _star_table(p, tab["r_edges"])
    rc, width = (tab["r_edges"][1:] + tab["r_edges"][:-1]) / 2, np.diff(tab["r_edges"])
    tab["GALAXY"] = galaxy_dn_dm(rc, p)[None, :] * width
    return tab


def cumulative_counts(
    cls: str, r: np.ndarray, params: PopulationParams | None = None
) -> np.ndarray:
    """Expected objects of class ``cls`` per deg^2 brighter than ``r`` (r_min <= r <= r_max).

    This is the exact CDF (times the total) of what :func:`sample_population` draws.
    """
    p = params or PopulationParams()
    tab = _tables(p)
    if cls in ("QSO_LOW", "QSO_HIGH"):
        high = tab["z_edges"][:-1] >= QSO_SPLIT_Z - 1e-9  # the split is a cell edge
        cells = tab["QSO"][high if cls == "QSO_HIGH" else ~high]
    else:
        cells = tab[cls]
    cum = np.concatenate([[0.0], np.cumsum(cells.sum(0))])
    return np.interp(r, tab["r_edges"], cum)


def expected_counts(
    area_deg2: float, params: PopulationParams | None = None, r_max: float | None = None,
    *, pointlike: bool = False,
) -> dict[str, float]:  # fmt: skip
    """Expected number of objects per class brighter than ``r_max``, without sampling.

    With ``pointlike``, galaxies count only with their probability of a half-light
    radius below :data:`POINTLIKE_HALF_LIGHT_ARCSEC` (stars and QSOs are all point-like).
    """
    p = params or PopulationParams()
    r_max = p.r_max if r_max is None else min(r_max, p.r_max)
    out = {c: float(area_deg2 * cumulative_counts(c, r_max, p)) for c in CLASSES}
    if pointlike:
        edges = np.linspace(p.r_min, r_max, max(1, round((r_max - p.r_min) / 0.05)) + 1)
        r = (edges[1:] + edges[:-1]) / 2
        z = np.linspace(p.galaxy_z_min, p.galaxy_z_max, 301)
        frac, zm = _bpz(r, p)
        a = np.array(_BPZ_A)
        cdf = _z_cdf(z[None, :, None], zm[:, None, :], a)  # (r, z, T)
        pz = np.diff(cdf, axis=1) / (cdf[:, -1:] - cdf[:, :1])
        zc, t = ((z[1:] + z[:-1]) / 2)[None, :, None], np.arange(3)[None, None, :]
        ln_r, sig = _log_size(r[:, None, None], zc, t, p)
        small = special.ndtr((np.log(POINTLIKE_HALF_LIGHT_ARCSEC) - ln_r) / sig)
        share = (frac * (pz * small).sum(1)).sum(1)
        out["GALAXY"] = float(area_deg2 * np.sum(galaxy_dn_dm(r, p) * np.diff(edges) * share))
    return out


def _draw(rng: np.random.Generator, cells: np.ndarray, area: float) -> np.ndarray:
    """Poisson total, then flat indices of cells picked in proportion to their counts."""
    cum = np.cumsum(cells.ravel())
    n = rng.poisson(area * cum[-1])
    return np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), cum.size - 1)


def sample_population(
    area_deg2: float, rng: np.random.Generator, params: PopulationParams | None = None
) -> pd.DataFrame:
    """Objects of ``area_deg2`` of sky, deterministic for a given generator state.

    Returns
    -------
    pandas.DataFrame
        Stars, galaxies then QSOs: ``CLASS`` (STAR, GALAXY, QSO_LOW, QSO_HIGH), ``Z``
        (0 for stars), ``MAG_R`` (true rSDSS AB), ``MAG_G`` (QSOs, else NaN),
        ``SUBTYPE`` (O..M, WD; early, spiral, starburst; '' for QSOs) and
        ``HALF_LIGHT_ARCSEC`` (0 for point sources).
    """
    p = params or PopulationParams()
    tab = _tables(p)
    r_edges, z_edges = tab["r_edges"], tab["z_edges"]
    n_r = len(r_edges) - 1

    def mags(col):
        return r_edges[col] + np.diff(r_edges)[col] * rng.random(col.size)

    # stars
    idx = _draw(rng, tab["STAR"], area_deg2)
    star_r, star_t = mags(idx % n_r), np.array([*_TYPES, "WD"])[idx // n_r]
    # galaxies: type, then truncated BPZ redshift by inverting the Gamma CDF, then size
    gal_r = mags(_draw(rng, tab["GALAXY"], area_deg2))
    frac, zm = _bpz(gal_r, p)
    t = (rng.random(gal_r.size)[:, None] > np.cumsum(frac, 1)[:, :2]).sum(1)
    zm, a = zm[np.arange(t.size), t], np.array(_BPZ_A)[t]
    lo, hi = _z_cdf(p.galaxy_z_min, zm, a), _z_cdf(p.galaxy_z_max, zm, a)
    u = special.gammaincinv(1 + 1 / a, lo + (hi - lo) * rng.random(t.size))
    gal_z = np.clip(zm * u ** (1 / a), p.galaxy_z_min, p.galaxy_z_max)
    ln_r, sig = _log_size(gal_r, gal_z, t, p)
    size = np.exp(ln_r + sig * rng.standard_normal(t.size))
    # QSOs
    idx = _draw(rng, tab["QSO"], area_deg2)
    iz = idx // n_r
    qso_z = z_edges[iz] + np.diff(z_edges)[iz] * rng.random(idx.size)
    qso_r = mags(idx % n_r)
    zg, _, g_r = _qso_colours(p.qso_alpha_nu, p.qso_z_max)
    qso_cls = np.where(qso_z >= QSO_SPLIT_Z, "QSO_HIGH", "QSO_LOW")
    qso_g = qso_r + np.interp(qso_z, zg, g_r)

    n_s, n_g, n_q = star_r.size, gal_r.size, qso_r.size
    return pd.DataFrame(
        {
            "CLASS": np.concatenate([np.full(n_s, "STAR"), np.full(n_g, "GALAXY"), qso_cls]),
            "Z": np.concatenate([np.zeros(n_s), gal_z, qso_z]),
            "MAG_R": np.concatenate([star_r, gal_r, qso_r]),
            "MAG_G": np.concatenate([np.full(n_s + n_g, np.nan), qso_g]),
            "SUBTYPE": np.concatenate([star_t, np.array(_GALAXY_TYPES)[t], np.full(n_q, "")]),
            "HALF_LIGHT_ARCSEC": np.concatenate([np.zeros(n_s), size, np.zeros(n_q)]),
        }
    )
