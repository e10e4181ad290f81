"""Physical effects that turn one template into many: dust, absorbers, line strengths, hosts.

Pure numpy kernels on rest-frame wavelength grids (Angstrom). Each draw function
states its distribution in its docstring; the tests check the draws against it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special

#: Pei (1992) SMC fit, Table 4: a_i, lambda_i (micron), b_i, n_i.
_PEI_SMC = np.array(
    [
        [185.0, 0.042, 90.0, 2.0],
        [27.0, 0.08, 5.50, 4.0],
        [0.005, 0.22, -1.95, 2.0],
        [0.010, 9.7, -1.95, 2.0],
        [0.012, 18.0, -1.80, 2.0],
        [0.030, 25.0, 0.0, 2.0],
    ]
)
_PEI_SMC_RV = 2.93


def ccm89(wave: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """Milky Way extinction ``A_lambda / E(B-V)`` of Cardelli, Clayton & Mathis (1989).

    Infrared (eq. 2), optical/NIR (eq. 3) and ultraviolet (eq. 4) pieces; held at
    the end values outside 0.3-8 micron^-1.
    """
    x = np.clip(1e4 / np.asarray(wave, dtype=float), 0.3, 8.0)
    a, b = np.empty_like(x), np.empty_like(x)
    ir = x < 1.1
    a[ir], b[ir] = 0.574 * x[ir] ** 1.61, -0.527 * x[ir] ** 1.61
    opt = (x >= 1.1) & (x < 3.3)
    y = x[opt] - 1.82
    a[opt] = np.polyval([0.32999, -0.77530, 0.01979, 0.72085, -0.02427, -0.50447, 0.17699, 1], y)
    b[opt] = np.polyval([-2.09002, 5.30260, -0.62251, -5.38434, 1.07233, 2.28305, 1.41338, 0], y)
    uv = x >= 3.3
    xu = x[uv]
    fa = np.where(xu >= 5.9, -0.04473 * (xu - 5.9) ** 2 - 0.009779 * (xu - 5.9) ** 3, 0.0)
    fb = np.where(xu >= 5.9, 0.2130 * (xu - 5.9) ** 2 + 0.1207 * (xu - 5.9) ** 3, 0.0)
    a[uv] = 1.752 - 0.316 * xu - 0.104 / ((xu - 4.67) ** 2 + 0.341) + fa
    b[uv] = -3.090 + 1.825 * xu + 1.206 / ((xu - 4.62) ** 2 + 0.263) + fb
    return r_v * (a + b / r_v)


def smc_pei92(wave: np.ndarray) -> np.ndarray:
    """SMC extinction ``A_lambda / E(B-V)`` of Pei (1992), valid from 0.1 to 25 micron.

    The usual law for reddened quasars (Richards et al. 2003); unlike the
    Milky Way law it has no 2175 A bump, which quasar spectra do not show.
    """
    lam = np.asarray(wave, dtype=float) / 1e4
    a, li, b, n = _PEI_SMC.T
    r = lam[..., None] / li
    xi = np.sum(a / (r**n + 1 / r**n + b), axis=-1)  # A_lambda / A_B
    return xi * (1 + _PEI_SMC_RV)


def calzetti00(wave: np.ndarray, r_v: float = 4.05) -> np.ndarray:
    """Starburst attenuation ``k(lambda) = A_lambda / E(B-V)_stars`` of Calzetti et al. (2000).

    Eq. 4 between 0.12 and 2.2 micron; below 0.12 micron extended with the slope
    of the curve between 0.12 and 0.125 (the usual linear extrapolation); clipped at 0.
    """
    lam = np.asarray(wave, dtype=float) / 1e4

    def blue(m):
        return 2.659 * (-2.156 + 1.509 / m - 0.198 / m**2 + 0.011 / m**3) + r_v

    def red(m):
        return 2.659 * (-1.857 + 1.040 / m) + r_v

    k = np.where(lam < 0.63, blue(np.maximum(lam, 0.12)), red(lam))
    slope = (blue(0.12) - blue(0.125)) / (0.12 - 0.125)
    k = np.where(lam < 0.12, blue(0.12) + slope * (lam - 0.12), k)
    return np.maximum(k, 0.0)


def redden(flux: np.ndarray, curve: np.ndarray, ebv: np.ndarray) -> np.ndarray:
    """``flux * 10**(-0.4 E(B-V) k(lambda))`` for spectra ``(N, L)``, ``ebv`` ``(N,)``."""
    return flux * 10 ** (-0.4 * np.asarray(ebv)[:, None] * curve[None, :])


def draw_ebv(n: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    """Colour excesses from an exponential distribution of the given mean (mag)."""
    return rng.exponential(mean, n)


# --------------------------------------------------------------------------- absorbers
#: Lyman-alpha: rest wavelength (A), oscillator strength, damping constant (s^-1).
LYA, LYA_F, LYA_GAMMA = 1215.67, 0.4164, 6.265e8
#: pi e^2 / (m_e c) in cm^2 Hz.
_SIGMA0 = 0.026540
_C_KMS = 299792.458


def lya_optical_depth(wave_abs: np.ndarray, log_nhi: float, b_kms: float = 30.0) -> np.ndarray:
    """Lyman-alpha optical depth of an absorber (Voigt profile), on its rest-frame grid.

    Parameters
    ----------
    wave_abs
        Wavelengths in the absorber's rest frame (A).
    log_nhi
        log10 of the H I column density (cm^-2).
    b_kms
        Doppler parameter.
    """
    nu0 = _C_KMS * 1e13 / LYA  # Hz
    nu = _C_KMS * 1e13 / np.asarray(wave_abs, dtype=float)
    sigma = nu0 * b_kms / _C_KMS / np.sqrt(2)
    gamma = LYA_GAMMA / (4 * np.pi)
    return 10**log_nhi * _SIGMA0 * LYA_F * special.voigt_profile(nu - nu0, sigma, gamma)


def dla_transmission(
    wave_rest: np.ndarray, z_qso: float, z_abs: float, log_nhi: float
) -> np.ndarray:
    """Transmission of a damped Lyman-alpha absorber at ``z_abs`` in front of a QSO at ``z_qso``.

    The damped Lyman-alpha line plus the absorber's Lyman-limit edge (a column
    of 10^20 cm^-2 is opaque below 912 A in its frame).
    """
    wave_abs = np.asarray(wave_rest, dtype=float) * (1 + z_qso) / (1 + z_abs)
    tau = lya_optical_depth(wave_abs, log_nhi)
    tau = tau + np.where(wave_abs < 911.75, 6.3e-18 * 10**log_nhi * (wave_abs / 911.75) ** 3, 0)
    return np.exp(-tau)


def draw_dlas(
    z_qso: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which QSOs get one DLA in their Lyman-alpha forest, at what redshift and column.

    Incidence ``dN/dz = 0.25`` (Prochaska & Wolfe 2009 at z ~ 3) over the forest
    path from Lyman-beta to 3000 km/s short of the QSO, at most one per QSO;
    log N_HI from 20.3 with an exponential tail of scale 0.4 dex, capped at 22.

    Returns
    -------
    has, z_abs, log_nhi
        Arrays of shape ``(N,)``; NaN where ``has`` is False.
    """
    z_qso = np.asarray(z_qso, dtype=float)
    z_lo = np.maximum((1 + z_qso) * 1025.72 / LYA - 1, 0.0)
    z_hi = (1 + z_qso) * (1 - 3000 / _C_KMS) - 1
    path = np.clip(z_hi - z_lo, 0, None)
    has = rng.random(z_qso.size) < 1 - np.exp(-0.25 * path)
    z_abs = np.where(has, z_lo + rng.random(z_qso.size) * path, np.nan)
    log_nhi = np.where(has, np.minimum(20.3 + rng.exponential(0.4, z_qso.size), 22.0), np.nan)
    return has, z_abs, log_nhi


#: The broad absorption troughs' parent lines (rest A) and their depth relative to C IV.
BAL_LINES = {"CIV": (1549.06, 1.0), "SIIV": (1396.76, 0.7), "NV": (1240.14, 0.8), "LYA": (LYA, 0.5)}


def bal_transmission(wave_rest: np.ndarray, v_min, v_max, depth) -> np.ndarray:
    """Broad absorption troughs blueward of C IV, Si IV, N V and Lyman-alpha, shape ``(N, L)``.

    Each trough covers outflow velocities ``v_min`` to ``v_max`` (km/s), with
    ``depth`` (0-1) at C IV and smooth 500 km/s edges.
    """
    w = np.asarray(wave_rest, dtype=float)[None, :]
    v_min, v_max, depth = (np.asarray(a, dtype=float)[:, None] for a in (v_min, v_max, depth))
    tau = np.zeros((v_min.shape[0], w.shape[1]))
    for lam, rel in BAL_LINES.values():
        v = _C_KMS * (lam - w) / lam  # outflow velocity of the gas absorbing at w
        edge = special.expit((v - v_min) / 500) * special.expit((v_max - v) / 500)
        tau += -np.log1p(-np.clip(depth * rel, 0, 0.99)) * edge
    return np.exp(-tau)


def draw_bals(n: int, fraction: float, rng: np.random.Generator):
    """BAL parameters: which QSOs (``fraction``), troughs from ``v_min`` U(0, 5000) km/s,
    width U(2000, 20000) km/s, depth U(0.3, 0.9)."""
    has = rng.random(n) < fraction
    v_min = rng.uniform(0, 5000, n)
    return has, v_min, v_min + rng.uniform(2000, 20000, n), rng.uniform(0.3, 0.9, n)


# --------------------------------------------------------------------------- lines, hosts
def continuum(flux: np.ndarray, width: int) -> np.ndarray:
    """A running median continuum over ``width`` pixels, per spectrum.

    Exact for a continuum linear across the window; emission lines much
    narrower than the window do not move it.
    """
    return ndimage.median_filter(flux, size=(1, width), mode="nearest")


def scale_lines(flux: np.ndarray, cont: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``continuum + factor * (flux - continuum)``, emission parts only (absorption kept)."""
    excess = np.clip(flux - cont, 0, None)
    return flux + (np.asarray(factor)[:, None] - 1) * excess


def host_fraction_mean(abs_mag: np.ndarray) -> np.ndarray:
    """Mean host-galaxy light fraction at rest 5100 A against QSO absolute magnitude.

    A logistic rise from ~0 for luminous QSOs to 0.8 at M ~ -20, half-way (0.4)
    at M = -22.5, the trend of Shen et al. (2011) and Vanden Berk et al. (2006).
    """
    return 0.8 * special.expit((np.asarray(abs_mag, dtype=float) + 22.5) / 0.8)


#: Concentration of the Beta distribution of host fractions around their mean.
HOST_CONCENTRATION = 8.0


def draw_host_fraction(abs_mag: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Host fractions ~ Beta(m k, (1 - m) k), m = :func:`host_fraction_mean`, k = 8."""
    m = np.clip(host_fraction_mean(abs_mag), 1e-4, 1 - 1e-4)
    return rng.beta(m * HOST_CONCENTRATION, (1 - m) * HOST_CONCENTRATION)
