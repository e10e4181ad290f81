"""Batched chi-square template fit of band fluxes: class, redshift and p(z).

For each class and grid redshift the model is linear in its coefficients, so
the weighted least-squares fit of one object is the normal equations
``A c = b`` with ``A = M W M^T`` (k x k) and ``b = M W f``. ``W`` differs per
object (errors, missing bands), so ``A`` is per object *and* redshift: it is
one matrix product ``w @ P`` with ``P`` the band-wise products of the basis
pairs (``B x n_z k(k+1)/2``), followed by a Cholesky factorisation written out
element by element and vectorised over (redshift, object). The chi-square
follows without forming the residuals: ``chi2 = f W f - |L^-1 b|^2``.

Errors get a systematic floor in quadrature, ``sigma^2 = err^2 + (s f)^2``
with ``s = 0.03`` by default: calibration and template mismatch at the few-
percent level, which otherwise lets the bright narrow bands dominate. It uses
the observed flux (not the model) so the fit stays linear.

Physical constraint for the PCA classes: the first coefficient (the mean
spectrum; positive for galaxy-2016 and QSO-LOZ/HIZ) must be > 0, otherwise the
grid point is rejected (chi2 = inf). It is one comparison per grid point and
removes the commonest unphysical fit, an inverted spectrum whose "emission
lines" sit on absorption features. An object whose every grid point is rejected
keeps its unconstrained fit and gets the ``UNCONSTRAINED`` flag.

Luminosity prior: a galaxy brighter than ``M_r = -24`` or a QSO fainter than
``M_r = -20.5`` is improbable, so grid points that need one pay
``((M - limit) / 0.5)^2`` in chi2 (:func:`luminosity_penalty`). Without it the
bright low-z galaxies of real surveys (r ~ 18-20) are fitted at z ~ 1.5, where
they would be 25th-magnitude-absolute monsters, and stars by a QSO at z ~ 0,
which would be a 17th-magnitude one.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from jpasbatch.templatefit.grids import TemplateGrids, load_grids

__all__ = [
    "CLASSES",
    "FLAG_BITS",
    "N_PARAMS",
    "TemplateFitResult",
    "fit_one_naive",
    "fit_photometry",
]

#: Output classes, in the order of ``CLASS_TEMPLATE`` codes.
CLASSES = ("STAR", "GALAXY", "QSO_LOW", "QSO_HIGH")
#: QSOs at z >= this are ``QSO_HIGH``.
QSO_SPLIT_Z = 2.1
#: Free parameters per fitted class in the BIC: amplitude + archetype choice
#: for stars; 5 PCA coefficients + z for galaxies; 4 PCA coefficients + z for QSOs.
N_PARAMS = {"STAR": 2, "GALAXY": 6, "QSO": 5}
#: Quality flag bits.
FLAG_BITS = {
    "FEW_BANDS": 1,  # fewer than MIN_BANDS usable bands
    "MULTIPLE_MINIMA": 2,  # chosen class has a second chi2 minimum within SECOND_DCHI2
    "Z_AT_EDGE": 4,  # chosen class's minimum at the first or last grid redshift
    "NO_FIT": 8,  # no usable band, or no finite chi2
    "UNCONSTRAINED": 16,  # every grid point broke the c0 > 0 constraint
}
MIN_BANDS = 10
#: A second local minimum this close in chi2 (and > SECOND_DZ away) is flagged.
SECOND_DCHI2 = 4.0
SECOND_DZ = 0.05  # in dz / (1 + z)
_FIT = ("STAR", "GALAXY", "QSO")
#: Absolute rSDSS magnitude limits of the luminosity prior (Planck18 distances,
#: k-correction approximated by the bandwidth term 2.5 log10(1 + z)).
M_GALAXY_BRIGHTEST = -24.0
M_QSO_FAINTEST = -20.5
M_SOFTNESS = 0.5


def luminosity_penalty(flux: np.ndarray, grids: TemplateGrids) -> dict[str, np.ndarray]:
    """Chi2 penalties ``(N, n_z)`` of the galaxy and QSO grids (0 where allowed).

    The apparent magnitude is the object's rSDSS AB magnitude (no penalty where
    that band is missing or not positive).
    """
    from astropy.cosmology import Planck18

    from jpasbatch.physics.filters import jpas
    from jpasbatch.physics.photometry import flux_to_ab

    out = {}
    n = flux.shape[0]
    if "rSDSS" not in grids.bands:
        return {c: np.zeros((n, grids.z[c].size)) for c in ("GALAXY", "QSO")}
    r = flux[:, grids.bands.index("rSDSS")]
    mag = flux_to_ab(np.where(r > 0, r, np.nan), jpas()["rSDSS"].pivot_wavelength)
    for c in ("GALAXY", "QSO"):
        z = np.maximum(grids.z[c], 1e-4)
        shift = Planck18.distmod(z).value - 2.5 * np.log10(1 + z)
        absolute = mag[:, None] - shift[None, :]
        if c == "GALAXY":
            excess = np.maximum(M_GALAXY_BRIGHTEST - absolute, 0.0)
        else:
            excess = np.maximum(absolute - M_QSO_FAINTEST, 0.0)
        out[c] = np.nan_to_num((excess / M_SOFTNESS) ** 2, nan=0.0)
    return out


def regrid_pdf(p: np.ndarray, x: np.ndarray, new_x: np.ndarray) -> np.ndarray:
    """Densities ``p`` (rows, on grid ``x``) on ``new_x``, each of unit trapezoid integral.

    The probability in each cell of ``new_x`` (between the midpoints of its nodes)
    is kept: the cumulative distribution is interpolated at the cell edges, not
    the density at the nodes. Point sampling loses a peak narrower than the new
    grid's step (a bright galaxy's p(z) on the QSO grid), and a row whose whole
    peak fell between two nodes became 0 / 0. Rows without probability stay 0.
    """
    p = np.asarray(p, dtype=float)
    cdf = np.zeros_like(p)
    cdf[:, 1:] = np.cumsum(0.5 * (p[:, 1:] + p[:, :-1]) * np.diff(x), axis=1)
    edges = np.concatenate([new_x[:1], 0.5 * (new_x[1:] + new_x[:-1]), new_x[-1:]])
    at = np.clip(edges, x[0], x[-1])  # no probability beyond the old grid
    j = np.clip(np.searchsorted(x, at) - 1, 0, len(x) - 2)
    w = (at - x[j]) / (x[j + 1] - x[j])
    dens = np.diff(cdf[:, j] * (1 - w) + cdf[:, j + 1] * w, axis=1) / np.diff(edges)
    norm = np.trapezoid(dens, new_x, axis=1)[:, None]
    return np.divide(dens, norm, out=np.zeros_like(dens), where=norm > 0)


@dataclass
class TemplateFitResult:
    """Per-object results of :func:`fit_photometry` (``N`` objects).

    Attributes
    ----------
    chi2
        Fitted class -> minimum chi2 over templates and redshifts ``(N,)``.
    chi2_z
        ``GALAXY``/``QSO`` -> chi2 on the grid ``(N, n_z)`` (inf: rejected).
    z_grid
        ``GALAXY``/``QSO`` -> the redshift grid.
    class_code
        Index into :data:`CLASSES` ``(N,)`` (-1: no fit).
    z, z_err
        Redshift of the chosen class (0 for stars), and its error.
    z_class
        Fitted class -> refined best redshift ``(N,)``.
    n_bands, flags, star_template
        Bands used, :data:`FLAG_BITS`, index of the best star archetype.
    coeff
        ``GALAXY``/``QSO`` -> coefficients ``(N, k)`` of the basis at the grid
        minimum, in the units of ``flux`` per unit of the grid's model.
    pz
        ``GALAXY``/``QSO`` -> p(z) on its grid ``(N, n_z)``, float32, unit integral
        (trapezoid rule).
    """

    chi2: dict[str, np.ndarray]
    chi2_z: dict[str, np.ndarray]
    z_grid: dict[str, np.ndarray]
    class_code: np.ndarray
    z: np.ndarray
    z_err: np.ndarray
    z_class: dict[str, np.ndarray]
    n_bands: np.ndarray
    flags: np.ndarray
    star_template: np.ndarray
    coeff: dict[str, np.ndarray] = field(default_factory=dict)
    pz: dict[str, np.ndarray] = field(default_factory=dict)

    def pz_chosen(self) -> tuple[np.ndarray, np.ndarray]:
        """p(z) of each object's chosen class on the QSO grid (0-6): ``(z, (N, n_z))``.

        Galaxy p(z) is moved onto it by :func:`regrid_pdf` (zero beyond its
        grid); a star gets a spike at z = 0 of unit trapezoid integral.
        """
        z = self.z_grid["QSO"]
        out = self.pz["QSO"].astype(float).copy()
        gal = self.class_code == 1
        if gal.any():
            out[gal] = regrid_pdf(self.pz["GALAXY"][gal], self.z_grid["GALAXY"], z)
        out[self.class_code <= 0] = 0.0
        out[self.class_code == 0, 0] = 2.0 / (z[1] - z[0])
        return z, out

    def class_probabilities(self) -> np.ndarray:
        """``(N, 4)`` probabilities of :data:`CLASSES` from the BIC: ``exp(-BIC / 2)``
        normalised, each QSO class taking the best QSO fit on its side of z = 2.1.

        Uniform (1/4 each) where nothing could be fitted.
        """
        qso = self.chi2_z["QSO"]
        low = self.z_grid["QSO"] < QSO_SPLIT_Z
        best = {
            "STAR": self.chi2["STAR"],
            "GALAXY": self.chi2["GALAXY"],
            "QSO_LOW": qso[:, low].min(axis=1),
            "QSO_HIGH": qso[:, ~low].min(axis=1),
        }
        logn = np.log(np.maximum(self.n_bands, 1))
        k = {"STAR": N_PARAMS["STAR"], "GALAXY": N_PARAMS["GALAXY"]}
        bic = np.stack([best[c] + k.get(c, N_PARAMS["QSO"]) * logn for c in CLASSES], axis=1)
        bic = np.where(np.isfinite(bic), bic, np.inf)
        top = bic.min(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            w = np.exp(-(bic - np.where(np.isfinite(top), top, 0)) / 2)
        total = w.sum(axis=1, keepdims=True)
        return np.where(total > 0, w / np.where(total > 0, total, 1), 0.25)

    def to_columns(self) -> dict[str, np.ndarray]:
        """Catalogue columns: ``CHI2_*``, ``CLASS_TEMPLATE``, ``Z_TEMPLATE(_ERR)``, ..."""
        names = np.array([*CLASSES, ""], dtype=object)
        return {
            "CHI2_STAR": self.chi2["STAR"],
            "CHI2_GALAXY": self.chi2["GALAXY"],
            "CHI2_QSO": self.chi2["QSO"],
            "CLASS_TEMPLATE": names[self.class_code].astype(str),
            "Z_TEMPLATE": self.z,
            "Z_TEMPLATE_ERR": self.z_err,
            "N_BANDS_FIT": self.n_bands,
            "FLAGS": self.flags,
        }


def _weights(flux: np.ndarray, error: np.ndarray, systematic: float):
    """Inverse variances (0 for a missing band) and fluxes (0 where missing)."""
    flux = np.asarray(flux, dtype=float)
    error = np.asarray(error, dtype=float)
    ok = np.isfinite(flux) & np.isfinite(error) & (error > 0)
    f = np.where(ok, flux, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ok, 1.0 / (error**2 + (systematic * f) ** 2), 0.0)
    return f, w, ok.sum(axis=1)


@dataclass
class _Prepared:
    """Products of a class's grid reused by every chunk."""

    k: int
    n_z: int
    lin: np.ndarray  # (k * n_z, B): b = lin @ (w f).T, coefficient-major
    pairs: np.ndarray  # (n_pair * n_z, B): A entries = pairs @ w.T, pair-major
    index: dict[tuple[int, int], int]


def _prepare(model: np.ndarray) -> _Prepared:
    n_z, k, nb = model.shape
    iu, ju = np.triu_indices(k)
    lin = np.ascontiguousarray(model.transpose(1, 0, 2).reshape(k * n_z, nb))
    pairs = (model[:, iu, :] * model[:, ju, :]).transpose(1, 0, 2).reshape(-1, nb)
    index = {}
    for p, (i, j) in enumerate(zip(iu, ju, strict=True)):
        index[i, j] = index[j, i] = p
    return _Prepared(k, n_z, lin, np.ascontiguousarray(pairs), index)


def _linear_chi2(prep: _Prepared, f: np.ndarray, w: np.ndarray, fwf: np.ndarray):
    """Chi2 ``(n, n_z)`` and the k coefficients ``(n_z, n)`` of the fit at every z."""
    n, k, nz = f.shape[0], prep.k, prep.n_z
    # (k, n_z, n) and (n_pair, n_z, n): every entry a contiguous (n_z, n) array
    b = (prep.lin @ (w * f).T).reshape(k, nz, n)
    a = (prep.pairs @ w.T).reshape(-1, nz, n)  # (n_pair, n_z, n)
    ridge = 1e-12  # relative: keeps a band-starved (singular) system finite
    low: dict[tuple[int, int], np.ndarray] = {}
    for j in range(k):
        ajj = a[prep.index[j, j]]
        s = ajj * (1 + ridge) - sum(low[j, m] ** 2 for m in range(j))
        d = np.sqrt(np.maximum(s, 1e-300))
        low[j, j] = d
        for i in range(j + 1, k):
            low[i, j] = (a[prep.index[i, j]] - sum(low[i, m] * low[j, m] for m in range(j))) / d
    y = []
    for i in range(k):
        y.append((b[i] - sum(low[i, m] * y[m] for m in range(i))) / low[i, i])
    chi2 = fwf[:, None] - sum(yi**2 for yi in y).T
    c: dict[int, np.ndarray] = {}
    for i in reversed(range(k)):
        c[i] = (y[i] - sum(low[m, i] * c[m] for m in range(i + 1, k))) / low[i, i]
    return np.maximum(chi2, 0.0), [c[i] for i in range(k)]


def _star_chi2(model: np.ndarray, f: np.ndarray, w: np.ndarray, fwf: np.ndarray):
    """Best non-negative single-archetype fit: chi2 ``(n,)`` and archetype index."""
    t = model[0]
    ft = (w * f) @ t.T
    tt = w @ (t * t).T
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where((ft > 0) & (tt > 0), ft * ft / tt, 0.0)
    best = np.argmax(gain, axis=1)
    return np.maximum(fwf - gain[np.arange(f.shape[0]), best], 0.0), best


def parabola_minimum(chi2: np.ndarray, z: np.ndarray):
    """Parabola through each row's grid minimum and its two neighbours.

    Parameters
    ----------
    chi2
        ``(n, n_z)`` chi-square curves (inf: not evaluated).
    z
        The shared grid ``(n_z,)`` (any coordinate, e.g. z or ln(1 + z)).

    Returns
    -------
    zbest, sigma, index
        Vertex (the grid value where the minimum is at an edge or the parabola
        is not convex), ``1 / sqrt(a)`` of ``chi2 = chi2_min + a (z - z0)^2``
        (Delta chi2 = 1; NaN where there is no vertex) and the grid index of
        the minimum.
    """
    n = chi2.shape[0]
    rows = np.arange(n)
    i = np.argmin(chi2, axis=1)
    j = np.clip(i, 1, z.size - 2)
    x1, x2, x3 = z[j - 1], z[j], z[j + 1]
    y1, y2, y3 = chi2[rows, j - 1], chi2[rows, j], chi2[rows, j + 1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        den = (x1 - x2) * (x1 - x3) * (x2 - x3)
        qa = (x3 * (y2 - y1) + x2 * (y1 - y3) + x1 * (y3 - y2)) / den
        qb = (x3**2 * (y1 - y2) + x2**2 * (y3 - y1) + x1**2 * (y2 - y3)) / den
        vertex = -qb / (2 * qa)
        # chi2 = chi2_min + qa (z - z0)^2, so Delta chi2 = 1 at |z - z0| = 1 / sqrt(qa)
        sigma = 1.0 / np.sqrt(qa)
    good = (i == j) & np.isfinite(vertex) & (qa > 0)
    zbest = np.where(good, np.clip(vertex, x1, x3), z[i])
    return zbest, np.where(good, sigma, np.nan), i


def _pz(chi2: np.ndarray, z: np.ndarray, cmin: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(-0.5 * (chi2 - cmin[:, None]))
    p = np.where(np.isfinite(p), p, 0.0)
    norm = np.trapezoid(p, z, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p / norm[:, None]).astype(np.float32)


def second_minimum_gap(chi2: np.ndarray, ibest: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Chi2 of the lowest other local minimum minus that at ``ibest``, per row.

    Parameters
    ----------
    chi2
        ``(n, n_z)`` chi-square curves.
    ibest
        Index of each row's best minimum ``(n,)``.
    far
        ``(n, n_z)``: grid points far enough from the best to count as a
        separate solution (not the same minimum's wings).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` gaps, inf where there is no other interior local minimum.
    """
    inner = (chi2[:, 1:-1] < chi2[:, :-2]) & (chi2[:, 1:-1] <= chi2[:, 2:])
    local = np.zeros(chi2.shape, bool)
    local[:, 1:-1] = inner
    cand = np.where(local & far, chi2, np.inf).min(axis=1)
    return cand - chi2[np.arange(chi2.shape[0]), ibest]


def _second_minimum(chi2: np.ndarray, z: np.ndarray, ibest: np.ndarray) -> np.ndarray:
    """Whether another local minimum, > SECOND_DZ away, is within SECOND_DCHI2."""
    zb = z[ibest][:, None]
    far = np.abs(z[None, :] - zb) / (1 + zb) > SECOND_DZ
    return second_minimum_gap(chi2, ibest, far) < SECOND_DCHI2


def _decide(
    chi2_z: dict,
    star: tuple,
    z_grid: dict,
    n_bands: np.ndarray,
    flags: np.ndarray,
    coeff: dict[str, np.ndarray],
):
    """Choose the class by BIC and collect the per-object results (shared with the naive fit)."""
    n = n_bands.size
    rows = np.arange(n)
    chi2 = {"STAR": star[0]}
    z_class = {"STAR": np.zeros(n)}
    zerr, ibest, pz = {"STAR": np.zeros(n)}, {}, {}
    for c in ("GALAXY", "QSO"):
        cz = chi2_z[c]
        chi2[c] = cz.min(axis=1)
        z_class[c], zerr[c], ibest[c] = parabola_minimum(cz, z_grid[c])
        pz[c] = _pz(cz, z_grid[c], chi2[c])
    logn = np.log(np.maximum(n_bands, 1))
    bic = np.stack([chi2[c] + N_PARAMS[c] * logn for c in _FIT], axis=1)
    bic = np.where(np.isfinite(bic), bic, np.inf)
    best = np.argmin(bic, axis=1)
    nofit = ~np.isfinite(bic).any(axis=1) | (n_bands == 0)
    zq = z_class["QSO"]
    code = np.choose(best, [np.zeros(n, int), np.ones(n, int), np.where(zq < QSO_SPLIT_Z, 2, 3)])
    code = np.where(nofit, -1, code)
    z = np.choose(best, [z_class[c] for c in _FIT])
    z_err = np.choose(best, [zerr[c] for c in _FIT])
    for c, b in (("GALAXY", 1), ("QSO", 2)):
        sel = best == b
        if not sel.any():
            continue
        zg = z_grid[c]
        # no curvature (edge or flat): the p(z) standard deviation instead
        mean = np.trapezoid(pz[c][sel] * zg, zg, axis=1)
        sd = np.sqrt(np.maximum(np.trapezoid(pz[c][sel] * zg**2, zg, axis=1) - mean**2, 0))
        z_err[sel] = np.where(np.isfinite(z_err[sel]), z_err[sel], sd)
        edge = (ibest[c][sel] == 0) | (ibest[c][sel] == zg.size - 1)
        multi = _second_minimum(chi2_z[c][sel], zg, ibest[c][sel])
        flags[sel] |= np.where(edge, FLAG_BITS["Z_AT_EDGE"], 0)
        flags[sel] |= np.where(multi, FLAG_BITS["MULTIPLE_MINIMA"], 0)
    flags |= np.where(n_bands < MIN_BANDS, FLAG_BITS["FEW_BANDS"], 0)
    flags |= np.where(nofit, FLAG_BITS["NO_FIT"], 0)
    return TemplateFitResult(
        chi2=chi2,
        chi2_z=chi2_z,
        z_grid={c: z_grid[c] for c in ("GALAXY", "QSO")},
        class_code=code,
        z=np.where(nofit, np.nan, z),
        z_err=np.where(nofit, np.nan, z_err),
        z_class=z_class,
        n_bands=n_bands,
        flags=flags,
        star_template=star[1][rows],
        coeff=coeff,
        pz=pz,
    )


def _constrain(chi2: np.ndarray, c0: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Reject grid points with c0 <= 0; keep the free fit where all are rejected."""
    bad = c0 <= 0
    allbad = bad.all(axis=1)
    flags |= np.where(allbad, FLAG_BITS["UNCONSTRAINED"], 0)
    return np.where(bad & ~allbad[:, None], np.inf, chi2)


def fit_photometry(
    flux: np.ndarray,
    error: np.ndarray,
    grids: TemplateGrids | None = None,
    *,
    systematic: float = 0.03,
    chunk: int = 256,
    ebv: np.ndarray | float | None = None,
) -> TemplateFitResult:
    """Fit every object's band fluxes with star, galaxy and QSO templates.

    Parameters
    ----------
    flux, error
        Band-averaged f_lambda and 1-sigma errors ``(N, B)`` in the band order of
        ``grids``. A band is missing where flux is NaN or error is NaN, inf or <= 0.
    grids
        From :func:`~jpasbatch.templatefit.grids.load_grids` (default: all 60 bands).
    systematic
        Fractional error floor added in quadrature: ``err^2 + (systematic flux)^2``.
    chunk
        Objects per batch; memory is ~ ``chunk x n_z x k^2`` doubles per class.
    ebv
        Galactic E(B-V) per object (or one for all): the models are reddened by
        ``A_b = k_b E(B-V)`` with the bands' extinction coefficients (CEFCA's
        ``kx``), done as the equivalent de-reddening of the fluxes and errors
        (a constant attenuation per band). None: no Galactic extinction.

    Returns
    -------
    TemplateFitResult
        Class by the lowest ``BIC = chi2 + k ln(n_bands)`` with ``k`` from
        :data:`N_PARAMS` (STAR 2, GALAXY 6, QSO 5); ``QSO_LOW``/``QSO_HIGH`` split at
        z = 2.1; z refined by a parabola through the three grid points around the
        minimum, its error ``1/sqrt(a)`` for the parabola ``a (z - z0)^2`` (the
        p(z) standard deviation where there is no curvature).
    """
    grids = load_grids() if grids is None else grids
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    error = np.atleast_2d(np.asarray(error, dtype=float))
    if flux.shape != error.shape or flux.shape[1] != len(grids.bands):
        raise ValueError(
            f"flux {flux.shape} and error {error.shape} must be (N, {len(grids.bands)})"
        )
    n = flux.shape[0]
    if ebv is not None:
        factor = 10 ** (0.4 * np.multiply.outer(np.broadcast_to(ebv, (n,)), _kx(grids.bands)))
        flux, error = flux * factor, error * factor
    prep = {c: _prepare(grids.model[c]) for c in ("GALAXY", "QSO")}
    chi2_z = {c: np.empty((n, grids.z[c].size)) for c in prep}
    coeff = {c: np.empty((n, p.k)) for c, p in prep.items()}
    star_chi2, star_idx = np.empty(n), np.empty(n, int)
    n_bands, flags = np.empty(n, int), np.zeros(n, np.int32)
    out = (chi2_z, coeff, star_chi2, star_idx, n_bands, flags)
    # One BLAS thread: the products have an inner dimension of 60 bands and are
    # memory-bound; on 2 cores two OpenBLAS threads made the fit 2x *slower*.
    with _one_blas_thread():
        for s in range(0, n, chunk):
            _fit_chunk(slice(s, s + chunk), flux, error, grids, prep, systematic, out)
    for c, penalty in luminosity_penalty(flux, grids).items():
        chi2_z[c] += penalty
    return _decide(chi2_z, (star_chi2, star_idx), grids.z, n_bands, flags, coeff)


def _kx(bands: Sequence[str]) -> np.ndarray:
    """Extinction coefficients A_b / E(B-V) of the bands (CEFCA archive ``kx``)."""
    from jpasbatch.physics.filters import get_system

    system = get_system(",".join(bands))
    return np.array([system[b].extinction_coeff for b in bands], dtype=float)


def _one_blas_thread():
    """A context with one BLAS thread (threadpoolctl), or nothing if it is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up, not a dependency
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _fit_chunk(sl: slice, flux, error, grids: TemplateGrids, prep: dict, systematic, out) -> None:
    """Fit the objects ``sl`` and write into the output arrays ``out``."""
    chi2_z, coeff, star_chi2, star_idx, n_bands, flags = out
    f, w, n_bands[sl] = _weights(flux[sl], error[sl], systematic)
    # a per-object scale keeps the sums near 1 (chi2 is scale-free)
    scale = np.max(np.abs(f), axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    f, w = f / scale, w * scale**2
    fwf = np.einsum("ij,ij,ij->i", w, f, f)
    star_chi2[sl], star_idx[sl] = _star_chi2(grids.model["STAR"], f, w, fwf)
    for c, p in prep.items():
        cz, co = _linear_chi2(p, f, w, fwf)
        cz = chi2_z[c][sl] = _constrain(cz, co[0].T, flags[sl])
        at = (np.argmin(cz, axis=1), np.arange(cz.shape[0]))
        coeff[c][sl] = np.stack([ci[at] for ci in co], axis=1) * scale


def fit_one_naive(
    flux_row: np.ndarray, error_row: np.ndarray, grids: TemplateGrids, *, systematic: float = 0.03
) -> TemplateFitResult:
    """Reference fit of one object: ``numpy.linalg.lstsq`` per template and grid z.

    Slow (a Python loop over every grid point and archetype); the benchmark's peer
    and the tests' independent calculation. Same weights, constraint and decision
    rule as :func:`fit_photometry`.
    """
    f, w, nb = _weights(np.reshape(flux_row, (1, -1)), np.reshape(error_row, (1, -1)), systematic)
    ok = w[0] > 0
    sw = np.sqrt(w[0, ok])
    y = f[0, ok] * sw
    flags = np.zeros(1, np.int32)
    chi2_z, coeff = {}, {}
    for c in ("GALAXY", "QSO"):
        model = grids.model[c]
        cz, coeff[c] = np.empty((1, model.shape[0])), np.empty((1, *model.shape[:2]))
        for iz in range(model.shape[0]):
            x = model[iz][:, ok].T * sw[:, None]
            coeff[c][0, iz] = np.linalg.lstsq(x, y, rcond=None)[0]
            cz[0, iz] = np.sum((x @ coeff[c][0, iz] - y) ** 2)
        chi2_z[c] = _constrain(cz, coeff[c][:, :, 0], flags)
        coeff[c] = coeff[c][:, np.argmin(chi2_z[c][0])]
    for c, penalty in luminosity_penalty(np.reshape(flux_row, (1, -1)), grids).items():
        chi2_z[c] = chi2_z[c] + penalty
    best, best_i = float(np.sum(y**2)), 0
    for a, t in enumerate(grids.model["STAR"][0]):
        x = t[ok] * sw
        amp = max(float(np.linalg.lstsq(x[:, None], y, rcond=None)[0][0]), 0.0)
        chi2 = float(np.sum((amp * x - y) ** 2))
        if chi2 < best:
            best, best_i = chi2, a
    star = (np.array([best]), np.array([best_i]))
    return _decide(chi2_z, star, grids.z, nb, flags, coeff)
