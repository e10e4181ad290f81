"""Template-fit redshifts of spectra: refinement of a prior, and the full-range scan.

The model of a spectrum at redshift z is a redrock PCA basis of its class,
shifted to the observed frame (``lambda / (1 + z)``), plus a Legendre
polynomial in observed wavelength (flux-calibration and continuum errors).
It is linear in its coefficients, so the chi-square at one z is a weighted
least-squares fit: the normal equations ``A c = b`` with ``A = D W D^T`` and
``b = D W f`` for the design ``D`` (k x pixels), and ``chi2 = f W f - b . c``.
``D`` depends only on z (the spectra share the wavelength grid), so at each
grid z the products ``w @ (D_i D_j)`` are one matrix product over every
spectrum evaluated there.

Redshift grids are uniform in ln(1 + z) (a constant velocity step,
``step = 1e-4`` is 30 km/s, a third of a common-grid pixel) and shared by
:func:`refine` and :func:`full_scan`: the refinement evaluates, per spectrum,
the grid points within ``+/- max(5 sigma_z, floor)`` of the network's z,
the scan all of them, as redrock does (galaxies 0-1.7, QSOs 0-6, stars
+/- 0.002). A parabola through the grid minimum and its neighbours gives
``Z`` and, from its curvature, ``Z_ERR`` (Delta chi2 = 1).

Templates: ``galaxy-2016`` (5 PCA vectors), ``QSO-LOZ`` below z = 1.5 and
``QSO-HIZ`` above (4 each; the split the emulator uses), and for stars the
5-vector PCA basis of each redrock subtype (B, A, F, G, K, M, WD), the best
subtype at each z. The 0.1 A star and galaxy grids are block-averaged to 1 A
first (the observed pixels are >= 0.8 A, >= 0.3 A rest-frame at z = 1.7).
Pixels a template does not cover at some z are left out of that z's fit.

``ZWARN`` bits follow redrock's numbering: ``LITTLE_COVERAGE`` (2), too few
good pixels; ``SMALL_DELTA_CHI2`` (4), DELTACHI2 < 9; ``Z_FITLIMIT`` (32),
the minimum at the edge of the window (refinement) or range (scan);
``NODATA`` (512), no good pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from jpasbatch.templatefit.kernel import parabola_minimum, second_minimum_gap
from jpasbatch.templates import redrock_basis

__all__ = [
    "CLASS_RANGES",
    "ZWARN_BITS",
    "RefineResult",
    "chi2_direct",
    "full_scan",
    "refine",
]

#: Redshift range of each class's grid (redrock's).
CLASS_RANGES = {"STAR": (-0.002, 0.002), "GALAXY": (0.0, 1.7), "QSO": (0.0, 6.0)}
#: Smallest refinement half-window in ln(1 + z) (~3000 / 6000 km/s).
WINDOW_FLOOR = {"GALAXY": 0.01, "QSO": 0.02}
#: Half-window in units of the network's sigma_z.
WINDOW_SIGMAS = 5.0
#: redrock ZWARN bits.
ZWARN_BITS = {"LITTLE_COVERAGE": 2, "SMALL_DELTA_CHI2": 4, "Z_FITLIMIT": 32, "NODATA": 512}
#: DELTACHI2 below this sets SMALL_DELTA_CHI2 (redrock's threshold).
MIN_DELTACHI2 = 9.0
#: Fewer good pixels than this sets LITTLE_COVERAGE.
MIN_PIXELS = 200
#: Minima closer than this in ln(1 + z) (~1000 km/s) are the same solution.
SEPARATE_DLNZ = 1000.0 / 299792.458
QSO_SPLIT_Z = 1.5
STAR_SUBTYPES = ("B", "A", "F", "G", "K", "M", "WD")
#: Block-averaging factor of the 0.1 A star and galaxy grids.
REBIN = 10


@cache
def _basis(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Rest-frame wavelength and basis of a redrock kind, each vector scaled to RMS 1.

    The scaling only conditions the normal equations (chi2 is scale-free).
    """
    wave, basis, _ = redrock_basis(kind)
    if not kind.startswith("QSO"):  # 0.1 A linear grids; QSO grids are already coarse
        n = (wave.size // REBIN) * REBIN
        wave = wave[:n].reshape(-1, REBIN).mean(1)
        basis = basis[:, :n].reshape(basis.shape[0], -1, REBIN).mean(2)
    basis = basis / np.sqrt(np.mean(basis**2, axis=1, keepdims=True))
    return wave, basis


def _kinds(cls: str, z: float) -> list[str]:
    """redrock template kinds fitted for ``cls`` at redshift ``z``."""
    if cls == "STAR":
        return [f"STAR-{s}" for s in STAR_SUBTYPES]
    if cls == "GALAXY":
        return ["galaxy-2016"]
    if cls == "QSO":
        return ["QSO-LOZ" if z < QSO_SPLIT_Z else "QSO-HIZ"]
    raise ValueError(f"unknown class {cls!r}; choose STAR, GALAXY or QSO")


def class_grid(cls: str, step: float = 1e-4) -> np.ndarray:
    """The class's redshift grid, uniform in ln(1 + z) with ``step``."""
    lo, hi = CLASS_RANGES[cls]
    x = np.arange(np.log1p(lo), np.log1p(hi) + step / 2, step)
    return np.expm1(x)


def _legendre(wave: np.ndarray, order: int) -> np.ndarray:
    """Legendre polynomials 0..order in observed wavelength mapped to [-1, 1]: ``(order+1, L)``."""
    t = 2 * (wave - wave[0]) / (wave[-1] - wave[0]) - 1
    return np.polynomial.legendre.legvander(t, order).T


def _design(kind: str, z: float, wave: np.ndarray, poly: np.ndarray):
    """Design ``(k, L)`` at z (zero where the template does not cover) and the coverage."""
    rest_wave, basis = _basis(kind)
    rest = wave / (1 + z)
    cov = (rest >= rest_wave[0]) & (rest <= rest_wave[-1])
    t = np.array([np.interp(rest, rest_wave, b) for b in basis])
    return np.vstack([t, poly]) * cov, cov


def _solve(design: np.ndarray, w: np.ndarray, wf: np.ndarray, fwf: np.ndarray) -> np.ndarray:
    """Chi2 ``(n,)`` of the weighted least-squares fit of ``design`` to each spectrum."""
    k = design.shape[0]
    iu, ju = np.triu_indices(k)
    a = w @ (design[iu] * design[ju]).T  # (n, k(k+1)/2)
    mat = np.empty((w.shape[0], k, k))
    mat[:, iu, ju] = a
    mat[:, ju, iu] = a
    d = np.arange(k)
    # a relative ridge keeps a template without coverage (zero row) solvable
    mat[:, d, d] = mat[:, d, d] * (1 + 1e-10) + 1e-30
    b = wf @ design.T
    c = np.linalg.solve(mat, b[..., None])[..., 0]
    return np.maximum(fwf - np.einsum("nk,nk->n", b, c), 0.0)


def _scan_windows(
    cls: str, wave, w, wf, wff, start: np.ndarray, width: np.ndarray, step: float, poly_order: int
) -> np.ndarray:
    """Chi2 ``(n, max(width))`` on grid points ``start .. start + width - 1`` (inf beyond)."""
    z = class_grid(cls, step)
    poly = _legendre(wave, poly_order)
    n = start.size
    out = np.full((n, int(width.max(initial=1))), np.inf)
    stop = start + width
    for j in range(int(start.min(initial=0)), int(stop.max(initial=0))):
        sel = np.flatnonzero((start <= j) & (j < stop))
        if sel.size == 0:
            continue
        best = np.full(sel.size, np.inf)
        for kind in _kinds(cls, z[j]):
            design, cov = _design(kind, z[j], wave, poly)
            best = np.minimum(best, _solve(design, w[sel], wf[sel], wff[sel] @ cov))
        out[sel, j - start[sel]] = best
    return out


@dataclass
class RefineResult:
    """Per-spectrum results of :func:`refine` and :func:`full_scan` (``N`` spectra).

    Attributes
    ----------
    z, z_err
        Best redshift (parabola vertex) and its Delta chi2 = 1 error.
    deltachi2
        Chi2 of the next-best separate minimum (any class fitted) minus the best.
    zwarn
        :data:`ZWARN_BITS`.
    z_net, z_net_err
        The network's redshift and error (NaN for the scan).
    spectype
        Class of the lowest chi2.
    chi2
        Lowest chi2; ``n_pixels``: good pixels; ``n_eval``: grid points evaluated
        (over all classes fitted), the cost measure.
    """

    z: np.ndarray
    z_err: np.ndarray
    deltachi2: np.ndarray
    zwarn: np.ndarray
    z_net: np.ndarray
    z_net_err: np.ndarray
    spectype: np.ndarray
    chi2: np.ndarray
    n_pixels: np.ndarray
    n_eval: np.ndarray

    def to_columns(self) -> dict[str, np.ndarray]:
        """Catalogue columns ``Z``, ``Z_ERR``, ``DELTACHI2``, ``ZWARN``, ``Z_NET`` ..."""
        return {
            "Z": self.z,
            "Z_ERR": self.z_err,
            "DELTACHI2": self.deltachi2,
            "ZWARN": self.zwarn,
            "Z_NET": self.z_net,
            "Z_NET_ERR": self.z_net_err,
            "SPECTYPE": self.spectype,
            "CHI2": self.chi2,
            "NPIXELS": self.n_pixels,
        }


def _weights(flux: np.ndarray, ivar: np.ndarray):
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    ivar = np.atleast_2d(np.asarray(ivar, dtype=float))
    ok = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    w = np.where(ok, ivar, 0.0)
    f = np.where(ok, flux, 0.0)
    return w, w * f, w * f * f, ok.sum(axis=1)


def _candidates(classes, n: int) -> list[tuple[str, ...]]:
    """Per spectrum, the tuple of classes to fit."""
    if isinstance(classes, str):
        return [(classes,)] * n
    out = []
    for c in classes:
        out.append((str(c),) if isinstance(c, str) else tuple(str(x) for x in c if x))
    if len(out) != n:
        raise ValueError(f"{len(out)} class entries for {n} spectra")
    return out


def _fit(
    wave, flux, ivar, classes, windows, step: float, poly_order: int, z_net, z_net_err
) -> RefineResult:
    """Shared body: ``windows(cls, rows) -> (start, width)`` on the class grid."""
    wave = np.asarray(wave, dtype=float)
    w, wf, wff, npix = _weights(flux, ivar)
    n = w.shape[0]
    cands = _candidates(classes, n)
    names = sorted({c for cs in cands for c in cs})
    per_class = {}  # cls -> rows, z, z_err, chi2 min, gap within the curve, at edge
    n_eval = np.zeros(n, int)
    for cls in names:
        rows = np.array([i for i, cs in enumerate(cands) if cls in cs], dtype=int)
        start, width = windows(cls, rows)
        sub = (w[rows], wf[rows], wff[rows])
        chi2 = _scan_windows(cls, wave, *sub, start, width, step, poly_order)
        n_eval[rows] += width
        x = step * np.arange(chi2.shape[1])  # ln(1 + z) offsets from each window's start
        xv, sx, ib = parabola_minimum(chi2, x)
        x0 = np.log1p(class_grid(cls, step)[start])
        zb = np.expm1(x0 + xv)
        far = np.abs(x[None, :] - x[ib][:, None]) > SEPARATE_DLNZ
        gap = second_minimum_gap(chi2, ib, far)
        edge = (ib == 0) | (ib == width - 1)
        cmin = chi2[np.arange(rows.size), ib]
        per_class[cls] = (rows, zb, sx * (1 + zb), cmin, gap, edge)
    best = np.full((n, len(names)), np.inf)
    for k, cls in enumerate(names):
        best[per_class[cls][0], k] = per_class[cls][3]
    order = np.argsort(best, axis=1)
    top = order[:, 0]
    z = np.full(n, np.nan)
    z_err = np.full(n, np.nan)
    dchi2 = np.full(n, np.inf)
    zwarn = np.zeros(n, np.int64)
    for k, cls in enumerate(names):
        rows, zb, ze, cmin, gap, edge = per_class[cls]
        mine = top[rows] == k
        r = rows[mine]
        z[r], z_err[r] = zb[mine], ze[mine]
        # redrock's DELTACHI2 also counts the other classes' best fits as candidates
        other = best[r, order[r, 1]] if len(names) > 1 else np.full(r.size, np.inf)
        dchi2[r] = np.minimum(gap[mine], other - cmin[mine])
        zwarn[r] |= np.where(edge[mine], ZWARN_BITS["Z_FITLIMIT"], 0)
    zwarn |= np.where(dchi2 < MIN_DELTACHI2, ZWARN_BITS["SMALL_DELTA_CHI2"], 0)
    zwarn |= np.where(npix < MIN_PIXELS, ZWARN_BITS["LITTLE_COVERAGE"], 0)
    zwarn |= np.where(npix == 0, ZWARN_BITS["NODATA"], 0)
    spectype = np.array(names, dtype=object)[top].astype(str)
    return RefineResult(
        z=z,
        z_err=z_err,
        deltachi2=dchi2,
        zwarn=zwarn,
        z_net=np.asarray(z_net, dtype=float),
        z_net_err=np.asarray(z_net_err, dtype=float),
        spectype=spectype,
        chi2=best.min(axis=1),
        n_pixels=npix,
        n_eval=n_eval,
    )


def refine(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    classes: Sequence[str] | Sequence[Sequence[str]] | str,
    z_net: np.ndarray,
    z_net_err: np.ndarray,
    *,
    step: float = 1e-4,
    poly_order: int = 3,
) -> RefineResult:
    """Refine the networks' redshifts by a template fit in a window around them.

    Parameters
    ----------
    wave
        Observed wavelengths ``(L,)`` in Angstrom, shared by the spectra.
    flux, ivar
        ``(N, L)``; ``ivar == 0`` (or non-finite values) masks a pixel.
    classes
        Per spectrum the class to fit (``"STAR"``, ``"GALAXY"``, ``"QSO"``) or a
        sequence of them (e.g. the network's top two; ``SPECTYPE`` is the one of
        lowest chi2); one string for all.
    z_net, z_net_err
        The network's redshift and 1-sigma error ``(N,)``. The window is
        ``ln(1+z_net) +/- max(5 z_net_err / (1 + z_net), floor)`` on the class's
        grid; stars are always fitted over their whole (+/- 0.002) grid.
    step
        Grid step in ln(1 + z).
    poly_order
        Order of the additive Legendre polynomial.

    Returns
    -------
    RefineResult
    """
    z_net = np.atleast_1d(np.asarray(z_net, dtype=float))
    z_net_err = np.atleast_1d(np.asarray(z_net_err, dtype=float))

    def windows(cls: str, rows: np.ndarray):
        grid = np.log1p(class_grid(cls, step))
        if cls == "STAR":
            return np.zeros(rows.size, int), np.full(rows.size, grid.size)
        zc = np.clip(np.nan_to_num(z_net[rows], nan=0.0), *CLASS_RANGES[cls])
        err = np.nan_to_num(z_net_err[rows], nan=0.0, posinf=0.0)
        half = np.maximum(WINDOW_SIGMAS * err / (1 + zc), WINDOW_FLOOR[cls])
        lo = np.searchsorted(grid, np.log1p(zc) - half)
        hi = np.searchsorted(grid, np.log1p(zc) + half, side="right")
        lo = np.clip(lo, 0, grid.size - 3)
        return lo, np.clip(hi, lo + 3, grid.size) - lo

    return _fit(wave, flux, ivar, classes, windows, step, poly_order, z_net, z_net_err)


def full_scan(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    classes: Sequence[str] | Sequence[Sequence[str]] | str = ("STAR", "GALAXY", "QSO"),
    *,
    step: float = 1e-4,
    poly_order: int = 3,
) -> RefineResult:
    """The same chi2 over each class's whole range, as redrock does (the peer of :func:`refine`).

    ``classes``: as in :func:`refine`; a tuple of class names (the default: all
    three) is fitted for every spectrum.
    """
    w = np.atleast_2d(np.asarray(flux))
    n = w.shape[0]
    if isinstance(classes, tuple) and all(isinstance(c, str) for c in classes):
        classes = [classes] * n

    def windows(cls: str, rows: np.ndarray):
        size = class_grid(cls, step).size
        return np.zeros(rows.size, int), np.full(rows.size, size)

    nan = np.full(n, np.nan)
    return _fit(wave, flux, ivar, classes, windows, step, poly_order, nan, nan)


def chi2_direct(
    wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, cls: str, z: float, poly_order: int = 3
) -> float:
    """Reference chi2 of one spectrum at one z: ``numpy.linalg.lstsq``, best template kind.

    Slow and independent of the batched normal equations; for tests.
    """
    wave = np.asarray(wave, dtype=float)
    flux = np.asarray(flux, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    poly = _legendre(wave, poly_order)
    best = np.inf
    for kind in _kinds(cls, z):
        rest_wave, basis = _basis(kind)
        rest = wave / (1 + z)
        use = (ivar > 0) & np.isfinite(flux) & (rest >= rest_wave[0]) & (rest <= rest_wave[-1])
        sw = np.sqrt(ivar[use])
        t = np.array([np.interp(rest[use], rest_wave, b) for b in basis])
        x = np.vstack([t, poly[:, use]]).T * sw[:, None]
        y = flux[use] * sw
        c = np.linalg.lstsq(x, y, rcond=None)[0]
        best = min(best, float(np.sum((x @ c - y) ** 2)))
    return best
