"""Template-fit redshifts of spectra: refinement of a prior, and the full-range scan.

The model of a spectrum at redshift z is a redrock PCA basis of its class,
shifted to the observed frame (``lambda / (1 + z)``), plus a Legendre
polynomial in observed wavelength (flux-calibration and continuum errors).
It is linear in its coefficients, so the chi-square at one z is a weighted
least-squares fit: the normal equations ``A c = b`` with ``A = D W D^T`` and
``b = D W f`` for the design ``D`` (k x pixels), and ``chi2 = f W f - b . c``.
``D`` depends only on z (the spectra share the wavelength grid), so the
products ``w @ (D_i D_j)`` of a block of grid points are one matrix product
over every spectrum evaluated there.

Both :func:`refine` and :func:`full_scan` search the same way, as redrock
does: a coarse grid uniform in ln(1 + z) (:data:`STEPS`: 120 km/s for
galaxies, 300 km/s for QSOs, 30 km/s for stars), then a fine grid (30 / 75 /
15 km/s) within one coarse step of each of the :data:`N_MINIMA` best coarse
minima (at least :data:`SEPARATE_DLNZ` apart), and a parabola through the
fine-grid minimum and its neighbours. The refinement evaluates the coarse
grid only around the network's z: its window ``+/- max(5 sigma_z, floor)``
and a guard band of the floor's width on either side; the scan
evaluates all of it (galaxies 0-1.7, QSOs 0-6, stars +/- 0.002). The grids
are shared, so wherever the scan's minimum lies inside the refinement's
range the two evaluate the same points and reach the same minimum. A best
minimum in a guard band means the chi2 still falls past the window's edge:
the prior is off, and ``Z_FITLIMIT`` is set (a minimum strictly at the
window's edge is rare: the chi2 of a spectrum far from its redshift
wanders, it does not slope). With ``widen=True`` (what ``jpasbatch spectra``
uses) such a class is refitted over its whole range for that spectrum.

``Z_ERR`` is the Delta chi2 = 1 half-width of that parabola, scaled by
``sqrt(chi2 / dof)`` where the fit is worse than the errors say (sky
residuals, unmodelled features: the curvature alone under-states the error
then). ``DELTACHI2`` is the chi2 of the next-best minimum (another of this
class's minima, or the best of another class fitted) minus the best.

Templates: ``galaxy-2016`` (5 PCA vectors), ``QSO-LOZ`` below z = 1.5 and
``QSO-HIZ`` above (4 each; the split the emulator uses), and for stars the
5-vector PCA basis of each redrock subtype (B, A, F, G, K, M, WD), the best
subtype at each z. The 0.1 A star and galaxy grids are block-averaged to 1 A
first (the observed pixels are >= 0.8 A, >= 0.3 A rest-frame at z = 1.7).
Pixels a template does not reach at some z are fitted by the polynomial alone
(every z is judged on the same pixels).

Isolated one-pixel spikes (:func:`spike_mask`: cosmic rays the reduction
missed) are masked before fitting: a template's emission line placed on a
cosmic ray at a wrong z otherwise wins by hundreds in chi2.

``ZWARN`` bits follow redrock's numbering: ``LITTLE_COVERAGE`` (2), too few
good pixels; ``SMALL_DELTA_CHI2`` (4), DELTACHI2 < 9; ``Z_FITLIMIT`` (32),
the minimum at the edge of the window (refinement) or range (scan);
``NODATA`` (512), no good pixel.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from jpasbatch.physics.templates import redrock_basis
from jpasbatch.templatefit.kernel import parabola_minimum

__all__ = [
    "CLASS_RANGES",
    "STEPS",
    "ZWARN_BITS",
    "RefineResult",
    "chi2_direct",
    "full_scan",
    "refine",
    "spike_mask",
]

#: Redshift range of each class's grid (redrock's).
CLASS_RANGES = {"STAR": (-0.002, 0.002), "GALAXY": (0.0, 1.7), "QSO": (0.0, 6.0)}
#: (coarse, fine) grid steps in ln(1 + z) per class.
STEPS = {"STAR": (1e-4, 5e-5), "GALAXY": (4e-4, 1e-4), "QSO": (1e-3, 2.5e-4)}
#: Smallest refinement half-window in ln(1 + z) (~6000 / 15000 km/s).
WINDOW_FLOOR = {"GALAXY": 0.02, "QSO": 0.05}
#: Half-window in units of the network's sigma_z.
WINDOW_SIGMAS = 5.0
#: Coarse minima of each class refined on the fine grid (the best and the runner-up).
N_MINIMA = 2
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
#: (grid point, template) designs evaluated in one matrix product.
BLOCK = 16
#: Up to this many spectra, the normal matrices are formed spectrum by spectrum.
SMALL_N = 2
#: Pixels summed into one for the coarse stage (galaxies and QSOs): ~280 km/s bins.
COARSE_BIN = 4
#: A spike: this many sigma above its neighbourhood ...
SPIKE_SIGMA = 8.0
#: ... while its neighbours are below this fraction of it (or 3 sigma).
SPIKE_NEIGHBOUR = 0.15


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


@cache
def _smoothed_basis(kind: str, width: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_basis` averaged over a box ``width`` wide in ln(wavelength).

    The spectra's pixels are uniform in ln(wavelength), so a bin of several
    pixels is a box of fixed width in ln(rest wavelength) at every z: this
    basis, sampled at a bin's centre, is the template's mean over the bin.
    """
    wave, basis = _basis(kind)
    lnw = np.log(wave)
    # samples per box: at least two per template step, so narrow lines are not aliased
    m = max(8, int(np.ceil(8 * width / np.diff(lnw).min())))
    sub = width / m
    x = np.arange(lnw[0], lnw[-1], sub)
    fine = np.array([np.interp(x, lnw, b) for b in basis])
    c = np.cumsum(np.pad(fine, ((0, 0), (1, 0))), axis=1)
    box = (c[:, m:] - c[:, :-m]) / m
    return np.exp(x[: box.shape[1]] + (m - 1) * sub / 2), box


def _kinds(cls: str, z: float) -> list[str]:
    """redrock template kinds fitted for ``cls`` at redshift ``z``."""
    if cls == "STAR":
        return [f"STAR-{s}" for s in STAR_SUBTYPES]
    if cls == "GALAXY":
        return ["galaxy-2016"]
    if cls == "QSO":
        return ["QSO-LOZ" if z < QSO_SPLIT_Z else "QSO-HIZ"]
    raise ValueError(f"unknown class {cls!r}; choose STAR, GALAXY or QSO")


def class_grid(cls: str, step: float) -> np.ndarray:
    """The class's redshift grid, uniform in ln(1 + z) with ``step``."""
    lo, hi = CLASS_RANGES[cls]
    n = int(np.floor((np.log1p(hi) - np.log1p(lo)) / step + 1e-9)) + 1
    return np.expm1(np.log1p(lo) + step * np.arange(n))


def _legendre(wave: np.ndarray, order: int) -> np.ndarray:
    """Legendre polynomials 0..order in observed wavelength mapped to [-1, 1]: ``(order+1, L)``."""
    t = 2 * (wave - wave[0]) / (wave[-1] - wave[0]) - 1
    return np.polynomial.legendre.legvander(t, order).T


def _design(
    kind: str, z: float, wave: np.ndarray, poly: np.ndarray, smooth: float = 0.0
) -> np.ndarray:
    """Design ``(k, L)`` at z: the template rows (zero where it does not reach), the polynomial.

    Every good pixel counts at every z, the ones a template does not reach with
    the polynomial alone: a chi2 over fewer pixels would be lower for that
    alone (QSO-LOZ stops at 9633 A rest, so at z ~ 0 it "won" by the ~200
    reddest pixels it dropped). ``smooth``: the templates' box average in
    ln(wavelength) (:func:`_smoothed_basis`), for binned pixels.
    """
    rest_wave, basis = _smoothed_basis(kind, smooth) if smooth else _basis(kind)
    rest = wave / (1 + z)
    t = np.array([np.interp(rest, rest_wave, b, left=0.0, right=0.0) for b in basis])
    return np.vstack([t, poly])


def _solve_block(designs: np.ndarray, w, wf, wff) -> np.ndarray:
    """Chi2 ``(n, m)`` of ``m`` designs ``(m, k, L)`` fitted to each of ``n`` spectra."""
    m, k, _ = designs.shape
    n = w.shape[0]
    if n <= SMALL_N:
        # few spectra: (D w) D^T per spectrum costs less than forming every D_i D_j
        mat = np.matmul(designs[None] * w[:, None, None, :], designs.transpose(0, 2, 1)[None])
    else:
        iu, ju = np.triu_indices(k)
        prod = (designs[:, iu] * designs[:, ju]).reshape(-1, designs.shape[-1])
        # (products x L) @ (L x n): BLAS is ~10x faster this way round than w @ prod.T
        a = (prod @ w.T).T.reshape(n, m, iu.size)
        mat = np.empty((n, m, k, k))
        mat[..., iu, ju] = a
        mat[..., ju, iu] = a
    d = np.arange(k)
    # a relative ridge keeps a template without coverage (zero row) solvable
    mat[..., d, d] = mat[..., d, d] * (1 + 1e-10) + 1e-30
    b = (designs.reshape(-1, designs.shape[-1]) @ wf.T).T.reshape(n, m, k)
    c = np.linalg.solve(mat, b[..., None])[..., 0]
    fwf = wff.sum(axis=1)[:, None]
    return np.maximum(fwf - np.einsum("nmk,nmk->nm", b, c), 0.0)


def _bin_pixels(a: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``size`` adjacent pixels along the last axis (the last, partial bin dropped)."""
    n = (a.shape[-1] // size) * size
    return a[..., :n].reshape(*a.shape[:-1], -1, size).sum(-1)


def _binned(wave, w, wf, size: int):
    """Spectra binned by ``size`` pixels: bin centres, ``w, wf, wff``, and the bin's width.

    A bin's flux is the inverse-variance-weighted mean ``sum(w f) / sum(w)``
    with weight ``sum(w)``, so its ``wff`` is ``sum(w f)^2 / sum(w)``; the
    model is the templates' mean over the bin (:func:`_smoothed_basis`), exact
    where the weights are even within a bin. Width: in ln(wavelength).
    """
    lnw = np.log(wave)
    centre = np.exp(_bin_pixels(lnw, size) / size)
    wb, wfb = _bin_pixels(w, size), _bin_pixels(wf, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        wffb = np.where(wb > 0, wfb**2 / wb, 0.0)
    return centre, wb, wfb, wffb, size * (lnw[-1] - lnw[0]) / (lnw.size - 1)


def _scan_windows(
    cls: str, wave, w, wf, wff, start: np.ndarray, width: np.ndarray, step: float, poly_order: int,
    smooth: float = 0.0,
) -> np.ndarray:  # fmt: skip
    """Chi2 ``(n, max(width))`` on grid points ``start .. start + width - 1`` (inf beyond).

    Grid points are taken in blocks of :data:`BLOCK` designs; each block is one
    product over the spectra whose windows touch it (the best template kind at
    each z for classes with several). ``smooth``: the pixels are bins of this
    width in ln(wavelength) (:func:`_binned`), and the templates are averaged so.
    """
    z = class_grid(cls, step)
    poly = _legendre(wave, poly_order)
    n = start.size
    out = np.full((n, int(width.max(initial=1))), np.inf)
    stop = start + width
    per_z = len(_kinds(cls, z[0]))
    chunk = max(1, BLOCK // per_z)
    for j0 in range(int(start.min(initial=0)), int(stop.max(initial=0)), chunk):
        js = np.arange(j0, min(j0 + chunk, int(stop.max())))
        sel = np.flatnonzero((start < js[-1] + 1) & (stop > js[0]))
        if sel.size == 0:
            continue
        pairs = [(j, kind) for j in js for kind in _kinds(cls, z[j])]
        best = np.full((sel.size, js.size), np.inf)
        # one product per kind: kinds can differ in size (QSO 4 vectors, others 5)
        for kind in dict.fromkeys(k for _, k in pairs):
            jj = [j for j, k in pairs if k == kind]
            designs = np.stack([_design(kind, z[j], wave, poly, smooth) for j in jj])
            chi2 = _solve_block(designs, w[sel], wf[sel], wff[sel])
            cols = np.asarray(jj) - js[0]
            for q, col in enumerate(cols):
                best[:, col] = np.minimum(best[:, col], chi2[:, q])
        inside = (start[sel, None] <= js[None, :]) & (js[None, :] < stop[sel, None])
        r, q = np.nonzero(inside)
        out[sel[r], js[q] - start[sel[r]]] = best[r, q]
    return out


@dataclass
class RefineResult:
    """Per-spectrum results of :func:`refine` and :func:`full_scan` (``N`` spectra).

    Attributes
    ----------
    z, z_err
        Best redshift (parabola vertex) and its Delta chi2 = 1 error (scaled by
        ``sqrt(chi2 / dof)`` when that exceeds 1).
    deltachi2
        Chi2 of the next-best separate minimum (any class fitted) minus the best.
    zwarn
        :data:`ZWARN_BITS`.
    z_net, z_net_err
        The network's redshift and error for its first class (NaN for the scan).
    spectype
        Class of the lowest chi2.
    chi2
        The chosen class's chi2; ``n_pixels``: good pixels; ``n_eval``: grid points evaluated
        (coarse and fine, over all classes fitted), the cost measure.
    class_chi2
        Each fitted class's lowest chi2 (inf where a spectrum did not fit it).
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
    class_chi2: dict[str, np.ndarray] = field(default_factory=dict)

    def to_columns(self) -> dict[str, np.ndarray]:
        """Catalogue columns ``Z``, ``Z_ERR``, ``DELTACHI2``, ``ZWARN``, ``Z_NET`` ...

        ``CHI2_<CLASS>``: each class's best chi2, NaN where it was not fitted.
        """
        per_class = {f"CHI2_{c}": np.where(np.isfinite(v), v, np.nan)
                     for c, v in self.class_chi2.items()}  # fmt: skip
        return per_class | {
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


def spike_mask(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """Isolated one-pixel spikes (unmasked cosmic rays): ``(N, L)`` booleans.

    A pixel is a spike when it is :data:`SPIKE_SIGMA` sigma above the median
    of the three pixels on each side while both neighbours are below
    ``max(3, SPIKE_NEIGHBOUR x)`` its excess: a cosmic ray fills one pixel,
    an emission line (instrumental sigma >= 30 km/s, half a pixel) puts >= 15%
    of its peak in each neighbour, so lines stay.
    """
    f = np.where(ivar > 0, flux, np.nan)
    pad = np.pad(f, ((0, 0), (3, 3)), constant_values=np.nan)
    shifts = [pad[:, 3 + s : pad.shape[1] - 3 + s] for s in (-3, -2, -1, 1, 2, 3)]
    with warnings.catch_warnings():  # all-NaN neighbourhoods (masked runs): NaN, no spike
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.stack(shifts), axis=0)
    excess = np.nan_to_num((f - med) * np.sqrt(np.clip(ivar, 0, None)), nan=0.0)
    left = np.pad(excess, ((0, 0), (1, 0)))[:, :-1]
    right = np.pad(excess, ((0, 0), (0, 1)))[:, 1:]
    limit = np.maximum(3.0, SPIKE_NEIGHBOUR * excess)
    return (excess > SPIKE_SIGMA) & (left < limit) & (right < limit)


def _weights(flux: np.ndarray, ivar: np.ndarray):
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    ivar = np.atleast_2d(np.asarray(ivar, dtype=float))
    ok = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    ok &= ~spike_mask(np.where(ok, flux, 0.0), np.where(ok, ivar, 0.0))
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
    for cs in out:
        for c in cs:
            if c not in CLASS_RANGES:
                raise ValueError(f"unknown class {c!r}; choose STAR, GALAXY or QSO")
    return out


def _coarse_minima(chi2: np.ndarray, step: float) -> np.ndarray:
    """Indices ``(n, N_MINIMA)`` of the lowest coarse points, each > SEPARATE_DLNZ from the others.

    -1 where a curve has fewer separate candidates.
    """
    n, m = chi2.shape
    c = chi2.copy()
    sep = int(np.ceil(SEPARATE_DLNZ / step))
    out = np.full((n, N_MINIMA), -1)
    cols = np.arange(m)
    for k in range(N_MINIMA):
        i = np.argmin(c, axis=1)
        ok = np.isfinite(c[np.arange(n), i])
        out[ok, k] = i[ok]
        c[np.abs(cols[None, :] - i[:, None]) <= sep] = np.inf
    return out


def _fit_class(cls, wave, w, wf, wff, start, width, core, poly_order, dof, bin_pixels):
    """Coarse window scan, fine refinement of the best minima: per-row z, error, chi2, gap, edge.

    The coarse scan of galaxies and QSOs runs on spectra binned by ``bin_pixels``
    (its cost falls by that factor; the fine grid and the parabola use every pixel).

    ``core``: ``(lo, hi)`` offsets of the prior's window inside ``start .. start + width``;
    a best minimum outside it (or at either end) is at the window's edge.
    """
    coarse, fine = STEPS[cls]
    n = start.size
    size = 1 if cls == "STAR" else bin_pixels
    if size > 1:
        *binned, smooth = _binned(wave, w, wf, size)
        chi2c = _scan_windows(cls, *binned, start, width, coarse, poly_order, smooth)
    else:
        chi2c = _scan_windows(cls, wave, w, wf, wff, start, width, coarse, poly_order)
    cand = _coarse_minima(chi2c, coarse)  # (n, N_MINIMA) window offsets
    xc = np.log1p(class_grid(cls, coarse))
    xf = np.log1p(class_grid(cls, fine))
    # fine windows around each candidate, inside the coarse window: one coarse step
    # either side, plus half a bin (a binned curve's minimum can sit that far off)
    half = coarse + 0.5 * (size - 1) * np.log(wave[1] / wave[0])
    span = 2 * int(np.ceil(half / fine - 1e-9)) + 1
    rows = np.repeat(np.arange(n), N_MINIMA)
    valid = cand.ravel() >= 0
    centre = xc[start[rows] + np.maximum(cand.ravel(), 0)]
    lo_c = xc[start[rows]]
    hi_c = xc[start[rows] + width[rows] - 1]
    lo = np.searchsorted(xf, np.maximum(centre - half, lo_c) - 1e-12)
    hi = np.searchsorted(xf, np.minimum(centre + half, hi_c) + 1e-12, side="right")
    fstart = np.clip(lo, 0, xf.size - 1)
    fwidth = np.clip(hi - lo, 1, span)
    r, v = rows[valid], np.flatnonzero(valid)
    chi2f = np.full((rows.size, span), np.inf)
    chi2f[v, : fwidth[v].max()] = _scan_windows(
        cls, wave, w[r], wf[r], wff[r], fstart[v], fwidth[v], fine, poly_order
    )
    xoff = fine * np.arange(chi2f.shape[1])
    xv, sx, ib = parabola_minimum(chi2f, xoff)
    cmin = chi2f[np.arange(rows.size), ib].reshape(n, N_MINIMA)
    best = np.argmin(cmin, axis=1)
    ar = np.arange(n)
    cbest = cmin[ar, best]
    gap = np.sort(cmin, axis=1)[:, 1] - cbest if N_MINIMA > 1 else np.full(n, np.inf)
    flat = ar * N_MINIMA + best
    zb = np.expm1(xf[fstart[flat]] + xv[flat])
    scale = np.sqrt(np.maximum(1.0, cbest / np.maximum(dof, 1)))
    zerr = sx[flat] * (1 + zb) * scale
    cb = cand[ar, best]
    edge = (cb == 0) | (cb == width - 1) | (cb < core[0]) | (cb >= core[1])
    n_eval = width + fwidth.reshape(n, N_MINIMA).sum(1)
    return zb, zerr, cbest, gap, edge, n_eval


def _fit(
    wave, flux, ivar, classes, windows, poly_order, z_net, z_net_err, widen: bool = False,
    bin_pixels: int = 1, penalty: Mapping[str, np.ndarray] | None = None,
) -> RefineResult:  # fmt: skip
    """Shared body: ``windows(cls, rows) -> (start, width, core)`` on the class's coarse grid.

    ``widen``: a row whose best minimum of a class falls in a guard band (the
    prior is off) is fitted again over that class's whole range; ``Z_FITLIMIT``
    then means the range's end. ``penalty``: per class ``(n,)``, added to its
    chi2 when the classes are ranked (``SPECTYPE``).
    """
    wave = np.asarray(wave, dtype=float)
    w, wf, wff, npix = _weights(flux, ivar)
    n = w.shape[0]
    cands = _candidates(classes, n)
    names = sorted({c for cs in cands for c in cs})
    per_class = {}
    n_eval = np.zeros(n, int)
    for cls in names:
        rows = np.array([i for i, cs in enumerate(cands) if cls in cs], dtype=int)
        start, width, core = windows(cls, rows)
        k = _basis(_kinds(cls, 0.0)[0])[1].shape[0] + poly_order + 1
        sub = (w[rows], wf[rows], wff[rows])
        dof = npix[rows] - k
        out = list(_fit_class(cls, wave, *sub, start, width, core, poly_order, dof, bin_pixels))
        size = class_grid(cls, STEPS[cls][0]).size
        redo = np.flatnonzero(out[4] & ((start > 0) | (start + width < size))) if widen else []
        if len(redo):
            whole = np.full(len(redo), size)
            zero = np.zeros(len(redo), int)
            again = _fit_class(
                cls, wave, *(a[redo] for a in sub), zero, whole, (zero, whole), poly_order,
                dof[redo], bin_pixels,
            )  # fmt: skip
            for j in range(5):
                out[j][redo] = again[j]
            out[5][redo] += again[5]
        n_eval[rows] += out[-1]
        per_class[cls] = (rows, *out[:-1])
    best = np.full((n, len(names)), np.inf)
    for k, cls in enumerate(names):
        best[per_class[cls][0], k] = per_class[cls][3]
    rank = best.copy()
    for k, cls in enumerate(names):
        if penalty is not None and cls in penalty:
            rank[:, k] += np.asarray(penalty[cls], dtype=float)
    order = np.argsort(rank, axis=1)
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
        # (their chi2 itself: negative where a class penalty overrules the chi2)
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
        chi2=best[np.arange(n), top],
        n_pixels=npix,
        n_eval=n_eval,
        class_chi2={c: best[:, k] for k, c in enumerate(names)},
    )


def _per_class(value, cands, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A prior given as one array or per class: ``({cls: (n,)}, the first class's (n,))``."""
    if isinstance(value, Mapping):
        per = {str(c): np.atleast_1d(np.asarray(v, dtype=float)) for c, v in value.items()}
    else:
        arr = np.atleast_1d(np.asarray(value, dtype=float))
        per = {c: arr for c in CLASS_RANGES}
    for c, v in per.items():
        if v.shape != (n,):
            raise ValueError(f"prior for {c}: shape {v.shape}, expected ({n},)")
    first = np.array([per[cs[0]][i] if cs[0] in per else np.nan for i, cs in enumerate(cands)])
    return per, first


def refine(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    classes: Sequence[str] | Sequence[Sequence[str]] | str,
    z_net: np.ndarray | Mapping[str, np.ndarray],
    z_net_err: np.ndarray | Mapping[str, np.ndarray],
    *,
    poly_order: int = 3,
    n_sigma: float = WINDOW_SIGMAS,
    floor: Mapping[str, float] | None = None,
    widen: bool = False,
    bin_pixels: int = COARSE_BIN,
    class_penalty: Mapping[str, np.ndarray] | None = None,
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
        The network's redshift and 1-sigma error ``(N,)``, or a mapping class ->
        ``(N,)`` (each class's ensemble; GaSNet-II has one per class). The window
        is ``ln(1+z_net) +/- max(n_sigma z_net_err / (1 + z_net), floor)`` on the
        class's coarse grid, fitted with guard bands of the floor's width beyond
        it (a best minimum there sets ``Z_FITLIMIT``), or its whole range
        where the prior is NaN; stars are always fitted over their whole
        (+/- 0.002) grid. ``RefineResult.z_net`` is the prior of each
        spectrum's first class.
    poly_order
        Order of the additive Legendre polynomial.
    n_sigma, floor
        Half-window in network sigmas, and its smallest value in ln(1 + z) per
        class (default :data:`WINDOW_FLOOR`).
    widen
        Fit a class again over its whole range where its best minimum fell in a
        guard band (the chi2 says the prior is off): the pipeline's choice, at
        the cost of a scan for those spectra only. Off, such spectra keep the
        window's answer and ``Z_FITLIMIT``.
    bin_pixels
        Pixels binned into one for the coarse stage of galaxies and QSOs (1: every
        pixel, as :func:`full_scan`).
    class_penalty
        Per class ``(N,)``, added to its chi2 when the fitted classes are ranked
        for ``SPECTYPE`` (e.g. ``-2 ln P(class)`` of a classifier); ``DELTACHI2``
        stays a chi2 difference (negative, and flagged, where it overrules the fit).

    Returns
    -------
    RefineResult
    """
    flux = np.atleast_2d(flux)
    n = flux.shape[0]
    cands = _candidates(classes, n)
    zp, z_first = _per_class(z_net, cands, n)
    ep, e_first = _per_class(z_net_err, cands, n)
    floors = {**WINDOW_FLOOR, **(floor or {})}

    def windows(cls: str, rows: np.ndarray):
        grid = np.log1p(class_grid(cls, STEPS[cls][0]))
        if cls == "STAR":
            whole = np.full(rows.size, grid.size)
            return np.zeros(rows.size, int), whole, (np.zeros(rows.size, int), whole)
        zr, er = zp[cls][rows], ep[cls][rows]
        # no prior (no ensemble for the class, a failed network): the whole range
        unknown = ~(np.isfinite(zr) & np.isfinite(er))
        zc = np.clip(np.where(unknown, 0.0, zr), *CLASS_RANGES[cls])
        half = np.maximum(n_sigma * np.where(unknown, 0.0, er) / (1 + zc), floors[cls])
        half = np.where(unknown, np.inf, half)
        x = np.log1p(zc)
        lo = np.clip(np.searchsorted(grid, x - half), 0, grid.size - 3)
        hi = np.clip(np.searchsorted(grid, x + half, side="right"), lo + 3, grid.size)
        # guard bands of the floor's width either side, to see the chi2 fall past the window
        lo2 = np.clip(np.searchsorted(grid, x - half - floors[cls]), 0, lo)
        hi2 = np.clip(np.searchsorted(grid, x + half + floors[cls], side="right"), hi, grid.size)
        return lo2, hi2 - lo2, (lo - lo2, hi - lo2)

    return _fit(wave, flux, ivar, cands, windows, poly_order, z_first, e_first, widen, bin_pixels,
                class_penalty)  # fmt: skip


def full_scan(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    classes: Sequence[str] | Sequence[Sequence[str]] | str = ("STAR", "GALAXY", "QSO"),
    *,
    poly_order: int = 3,
    bin_pixels: int = 1,
    class_penalty: Mapping[str, np.ndarray] | None = None,
) -> RefineResult:
    """The same chi2 over each class's whole range, as redrock does (the peer of :func:`refine`).

    ``classes``: as in :func:`refine`; a tuple of class names (the default: all
    three) is fitted for every spectrum. ``bin_pixels``, ``class_penalty``: as
    in :func:`refine`; the default 1 scans every pixel, as redrock does.
    """
    flux = np.atleast_2d(flux)
    n = flux.shape[0]
    if isinstance(classes, tuple) and all(isinstance(c, str) for c in classes):
        classes = [classes] * n

    def windows(cls: str, rows: np.ndarray):
        whole = np.full(rows.size, class_grid(cls, STEPS[cls][0]).size)
        return np.zeros(rows.size, int), whole, (np.zeros(rows.size, int), whole)

    nan = np.full(n, np.nan)
    return _fit(wave, flux, ivar, classes, windows, poly_order, nan, nan,
                bin_pixels=bin_pixels, penalty=class_penalty)  # fmt: skip


def chi2_direct(
    wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, cls: str, z: float, poly_order: int = 3
) -> float:
    """Reference chi2 of one spectrum at one z: ``numpy.linalg.lstsq``, best template kind.

    Slow and independent of the batched normal equations; for tests. Spikes
    are masked as in the fits.
    """
    wave = np.asarray(wave, dtype=float)
    flux = np.asarray(flux, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    good = (ivar > 0) & np.isfinite(flux)
    good &= ~spike_mask(np.where(good, flux, 0)[None], np.where(good, ivar, 0)[None])[0]
    poly = _legendre(wave, poly_order)
    best = np.inf
    for kind in _kinds(cls, z):
        rest_wave, basis = _basis(kind)
        rest = wave / (1 + z)
        use = good
        sw = np.sqrt(ivar[use])
        t = np.array([np.interp(rest[use], rest_wave, b, left=0.0, right=0.0) for b in basis])
        x = np.vstack([t, poly[:, use]]).T * sw[:, None]
        y = flux[use] * sw
        c = np.linalg.lstsq(x, y, rcond=None)[0]
        best = min(best, float(np.sum((x @ c - y) ** 2)))
    return best
