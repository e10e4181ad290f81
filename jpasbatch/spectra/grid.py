"""The common log-wavelength grid, flux-conserving resampling and network normalisation.

Every spectrum the networks see lives on one grid: 4618 pixels uniform in
log10(lambda) with the SDSS step of 1e-4 (69 km/s), centres from 3600 A
(``log10 = 3.5563``, a multiple of the SDSS step, so SDSS and BOSS pixels
fall exactly on grid pixels) to 10423 A. FNet's grid has the same 4618
pixels over 3600-10325 A; the step here is the survey's own.

Resampling (:func:`resample`) treats each input pixel as a constant flux
density over its extent (edges halfway between centres) and averages it over
each output pixel: the integral of f_lambda over any union of output pixels
equals that of the input over the same wavelengths, exactly. It is one sparse
overlap matrix per input grid (one per call: the rows of an (N, L) batch share it),
masked pixels carry no weight, and an output pixel less than half covered by
good input is masked. The variance of each output pixel is propagated
exactly through the same weights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse

#: SDSS / BOSS log10-wavelength step.
LOGLAM_STEP = 1e-4
#: First grid centre, log10(3600 A) rounded to the SDSS step.
LOGLAM_START = 3.5563
#: Pixels of the common grid (FNet's 4618).
N_PIXELS = 4618
#: Good fraction of an output pixel below which it is masked.
MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class LogGrid:
    """A grid uniform in log10(lambda): centres ``10**(start + step * i)``, i < n."""

    start: float = LOGLAM_START
    step: float = LOGLAM_STEP
    n: int = N_PIXELS

    @cached_property
    def loglam(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.n)

    @cached_property
    def wavelength(self) -> np.ndarray:
        """Pixel centres in Angstrom."""
        return 10.0**self.loglam

    @cached_property
    def edges(self) -> np.ndarray:
        """Pixel edges (n + 1), halfway in log10 between centres."""
        return 10.0 ** (self.start + self.step * (np.arange(self.n + 1) - 0.5))

    def to_dict(self) -> dict:
        return {"start": self.start, "step": self.step, "n": self.n}


#: The grid everything in :mod:`jpasbatch.spectra` uses unless told otherwise.
COMMON_GRID = LogGrid()


def pixel_edges(wavelength: np.ndarray) -> np.ndarray:
    """Edges of pixels centred on ``wavelength``: geometric midpoints, half a step beyond the ends.

    Geometric midpoints are exact for log-lambda grids (SDSS, BOSS, this
    module's) and differ from arithmetic ones by ~1e-5 A on DESI's linear 0.8 A grid.
    """
    w = np.asarray(wavelength, dtype=np.float64)
    if w.size == 1:
        return np.array([w[0] * (1 - 1e-4), w[0] * (1 + 1e-4)])
    mid = np.sqrt(w[1:] * w[:-1])
    return np.concatenate([[w[0] ** 2 / mid[0]], mid, [w[-1] ** 2 / mid[-1]]])


def overlap_matrix(in_edges: np.ndarray, out_edges: np.ndarray) -> sparse.csr_matrix:
    """Sparse ``(n_out, n_in)`` matrix of the wavelength overlap (A) of every pixel pair.

    Built from the merged list of all edges: each interval between two
    consecutive break points lies inside exactly one input and one output pixel
    (or outside one of the grids), so the matrix is exact and has at most
    ``n_in + n_out`` entries.
    """
    brk = np.union1d(in_edges, out_edges)
    lo, hi = brk[:-1], brk[1:]
    mid = 0.5 * (lo + hi)
    i_in = np.searchsorted(in_edges, mid) - 1
    i_out = np.searchsorted(out_edges, mid) - 1
    ok = (i_in >= 0) & (i_in < in_edges.size - 1) & (i_out >= 0) & (i_out < out_edges.size - 1)
    return sparse.csr_matrix(
        (hi[ok] - lo[ok], (i_out[ok], i_in[ok])), shape=(out_edges.size - 1, in_edges.size - 1)
    )


def resample(
    wavelength: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray | None = None,
    good: np.ndarray | None = None,
    grid: LogGrid = COMMON_GRID,
    min_coverage: float = MIN_COVERAGE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample spectra onto ``grid``, conserving flux.

    Parameters
    ----------
    wavelength
        Input pixel centres ``(L,)``, strictly increasing.
    flux
        ``(L,)`` or ``(N, L)`` flux densities on that grid.
    ivar
        Inverse variances, same shape (None: no noise information, ivar out = 1
        where covered).
    good
        Usable pixels, same shape (default: finite flux and ``ivar > 0``).
    grid
        The output grid.
    min_coverage
        Output pixels with less than this fraction of their width covered by
        good input are masked.

    Returns
    -------
    flux, ivar, good
        ``(N, n)`` arrays (``(n,)`` for 1-D input): the good-pixel average of the
        flux density over each output pixel, its inverse variance, and the mask
        of usable output pixels. Masked output pixels have flux 0 and ivar 0.
    """
    one = np.ndim(flux) == 1
    f = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    if good is None:
        good = np.isfinite(f) if ivar is None else np.isfinite(f) & (np.atleast_2d(ivar) > 0)
    g = np.atleast_2d(good) & np.isfinite(f)
    if ivar is not None:
        iv = np.atleast_2d(np.asarray(ivar, dtype=np.float64))
        g &= np.isfinite(iv) & (iv > 0)
    m = overlap_matrix(pixel_edges(wavelength), grid.edges)  # (n_out, L)
    width = np.diff(grid.edges)
    gw = g.astype(np.float64)
    covered = (m @ gw.T).T  # good wavelength inside each output pixel
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (m @ np.where(g, f, 0.0).T).T / covered
        ok = covered >= min_coverage * width
        if ivar is None:
            out_ivar = np.where(ok, 1.0, 0.0)
        else:
            var = np.where(g, 1.0 / np.where(g, iv, 1.0), 0.0)
            # var(sum_i a_i f_i / A) = sum_i a_i^2 var_i / A^2, with a the overlaps
            out_var = (m.multiply(m) @ var.T).T / covered**2
            out_ivar = np.where(ok & (out_var > 0), 1.0 / out_var, 0.0)
    out = np.where(ok, out, 0.0)
    if one:
        return out[0], out_ivar[0], ok[0]
    return out, out_ivar, ok


def network_input(
    flux: np.ndarray,
    good: np.ndarray,
    mode: str = "rms",
    clip: float = 30.0,
    ivar: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The two-channel network input ``(N, 2, n)``: normalised flux and good-pixel indicator.

    Parameters
    ----------
    flux, good
        ``(N, n)`` resampled flux and usable-pixel mask.
    mode
        ``rms``: flux divided by its root-mean-square over good pixels (GaSNet-II's
        flux / L2 norm, times sqrt(n_good) so values are of order 1 whatever the
        number of good pixels). ``zero_mean``: the mean over good pixels
        subtracted first (FNet's zero-mean, unit-norm input, on the same scale).
    clip
        Normalised values are clipped to ``[-clip, clip]``: a single unmasked
        cosmic ray or sky residual must not set the scale of what the network sees.
    ivar
        If given, also return the per-pixel noise sigma on the normalised scale
        ``(N, n)`` (0 on masked pixels), for noise augmentation in training.

    Only the shape of the spectrum survives (any overall flux scale cancels);
    masked pixels are 0 in the flux channel and flagged in the second one.
    """
    f = np.where(good, np.nan_to_num(flux, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    n_good = np.maximum(good.sum(1, keepdims=True), 1)
    if mode == "zero_mean":
        f = np.where(good, f - f.sum(1, keepdims=True) / n_good, 0.0)
    elif mode != "rms":
        raise ValueError(f"mode must be 'rms' or 'zero_mean', got {mode!r}")
    # robust scale: the RMS after clipping at 10x the median absolute value,
    # so a few spikes cannot shrink the rest of the spectrum to nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(good, np.abs(f), np.nan), axis=1, keepdims=True)
    med = np.where(np.isfinite(med) & (med > 0), med, 1.0)
    capped = np.clip(f, -10 * med, 10 * med)
    rms = np.sqrt((capped**2).sum(1, keepdims=True) / n_good)
    rms = np.where(rms > 0, rms, 1.0)
    x = np.clip(f / rms, -clip, clip)
    out = np.stack([x, good.astype(np.float64)], axis=1).astype(np.float32)
    if ivar is None:
        return out
    sigma = np.where(good, 1.0 / np.sqrt(np.where(good & (ivar > 0), ivar, 1.0)), 0.0) / rms
    return out, sigma.astype(np.float32)


def median_snr(flux: np.ndarray, ivar: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Median per-pixel S/N over good pixels (SDSS's ``SN_MEDIAN_ALL``), NaN when none."""
    snr = np.where(good, np.asarray(flux) * np.sqrt(np.clip(ivar, 0, None)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked rows give NaN
        return np.nanmedian(np.atleast_2d(snr), axis=1)
