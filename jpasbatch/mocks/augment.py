"""Training-set augmentation, sampling weights and splits for mock catalogues.

* :func:`hybridise` -- "hybridisation" (mix-up across classes) of the miniJPAS
  quasar ANN paper (Martinez-Solaeche et al. 2023, Sect. 3.3, Eqs. 2-6).
* :func:`inverse_density_weights` -- sampling probabilities inversely
  proportional to the local density in each class's feature space, each class
  carrying the same total mass (OJALA, Appendix B).
* :func:`balanced_split` -- train / validation / test split stratified by class.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

SPLITS = ("train", "validation", "test")


def luminosity_coefficients(counts: ArrayLike) -> np.ndarray:
    """Luminosity coefficients ``c_ij = N_j / (N_tot - N_i)`` (paper Eq. 5), ``c_ii = 0``.

    Parameters
    ----------
    counts
        Objects per class in one magnitude bin, shape ``(C,)``.

    Returns
    -------
    numpy.ndarray
        ``(C, C)``; each row ``i`` sums to 1 over ``j != i`` whenever another
        class is present in the bin, and is all zero otherwise.
    """
    n = np.asarray(counts, dtype=float)
    others = n.sum() - n
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(others[:, None] > 0, n[None, :] / others[:, None], 0.0)
    np.fill_diagonal(c, 0.0)
    return c


def draw_alpha(size: int | tuple[int, ...], b: float, rng: np.random.Generator | int) -> np.ndarray:
    """Draw mixing coefficients ``alpha`` (paper Eq. 4).

    The paper writes ``alpha = 1 - (1/b) exp(-x/b)`` with ``x`` in [0, 1]; read
    literally that is not in [0, 1] (it reaches ``1 - 1/b = -9`` for b = 0.1). Its
    text fixes the meaning: alpha lies in [0, 1], is near one with high
    probability for small ``b``, and mixes more as ``b`` grows. So
    ``(1/b) exp(-x/b)`` is the *pdf* of the mixing fraction ``x = 1 - alpha``:
    an exponential of scale ``b`` truncated to [0, 1], drawn here by inverting
    its CDF ``F(x) = (1 - exp(-x/b)) / (1 - exp(-1/b))``.
    """
    if b <= 0:
        raise ValueError("b must be > 0")
    u = np.random.default_rng(rng).random(size)
    x = -b * np.log1p(-u * -np.expm1(-1.0 / b))
    return 1.0 - x


def magnitude_bins(r_mag: ArrayLike, bin_size: int) -> np.ndarray:
    """Bin index of each object in equal-count bins of ``~bin_size`` objects by magnitude."""
    r = np.asarray(r_mag, dtype=float)
    n_bins = max(1, round(len(r) / bin_size))
    # rank order, so bins have equal counts even with ties; stable sort -> deterministic
    order = np.argsort(r, kind="stable")
    out = np.empty(len(r), dtype=np.int64)
    for k, idx in enumerate(np.array_split(order, n_bins)):
        out[idx] = k
    return out


def hybridise(
    flux: ArrayLike,
    classes: ArrayLike,
    r_mag: ArrayLike,
    rng: np.random.Generator | int,
    *,
    factor: int = 5,
    b: float = 0.1,
    bin_size: int = 20_000,
    soft_labels: bool = False,
):
    """Hybrid training set: each object mixed with objects of the other classes.

    Every output row is a hybrid (the originals are not included, as in the
    paper: "a new training set composed only of hybrid objects"). Output row
    ``k * N + n`` (``k = 0 .. factor-1``) is the ``k``-th hybrid built on input
    object ``n``, of class ``i``, in its r-magnitude bin (equal-count bins of
    ``~bin_size`` objects)::

        f_H = alpha f_n + (1 - alpha) sum_{j != i} c_ij f_{p_j}      (paper Eq. 6)

    with one fresh ``alpha`` (see :func:`draw_alpha`) and, for every other class
    ``j`` present in the bin, one partner ``p_j`` drawn uniformly from that
    class's objects in the same bin; ``c_ij`` from :func:`luminosity_coefficients`.
    Eq. 3 of the paper writes ``(1 - alpha_j)`` per partner, but its worked
    example (Eq. 6) and the text use the hybrid's own ``alpha``; only then are the
    weights convex (sum to 1), so Eq. 6 is followed. The hybrid keeps the class
    label of object ``n``, so each class's count is exactly ``factor`` times the
    input count ("the proportion of each class ... remained the same"). In a bin
    with no other class, the hybrid is a copy of ``n``.

    Parameters
    ----------
    flux
        Fluxes ``(N, B)``. A band NaN in any contributor is NaN in the hybrid.
    classes
        Class labels ``(N,)`` (any sortable dtype).
    r_mag
        r magnitudes ``(N,)`` (finite), used for the bins.
    rng
        Generator or seed.
    factor, b, bin_size
        Hybrids per input object; scale of the mixing-fraction distribution;
        target objects per magnitude bin.
    soft_labels
        Also return the mixed label vectors (paper Eq. 2).

    Returns
    -------
    flux_h : numpy.ndarray
        ``(factor N, B)`` hybrid fluxes.
    classes_h : numpy.ndarray
        ``(factor N,)``, ``np.tile(classes, factor)``.
    r_mag_h : numpy.ndarray
        ``(factor N,)``: the magnitude of the hybrid's r flux, i.e. the same
        weights applied to ``10**(-0.4 r_mag)`` (exact if ``r_mag`` is the
        magnitude of one of the flux columns, since the mix is linear).
    y_h : numpy.ndarray, optional
        ``(factor N, C)`` label vectors over ``np.unique(classes)``:
        ``alpha`` on the own class, ``(1 - alpha) c_ij`` on the others.
    """
    rng = np.random.default_rng(rng)
    flux = np.asarray(flux, dtype=float)
    classes = np.asarray(classes)
    r_mag = np.asarray(r_mag, dtype=float)
    n = len(flux)
    if classes.shape != (n,) or r_mag.shape != (n,):
        raise ValueError("flux, classes and r_mag must have the same length")
    if not np.all(np.isfinite(r_mag)):
        raise ValueError("r_mag must be finite to bin objects by magnitude")
    labels, cls = np.unique(classes, return_inverse=True)
    n_cls = len(labels)
    lum = 10.0 ** (-0.4 * r_mag)

    out = np.empty((factor * n, flux.shape[1]))
    lum_h = np.empty(factor * n)
    y_h = np.zeros((factor * n, n_cls))
    bins = magnitude_bins(r_mag, bin_size)
    for k_bin in np.unique(bins):
        in_bin = np.flatnonzero(bins == k_bin)
        members = [in_bin[cls[in_bin] == c] for c in range(n_cls)]
        coeff = luminosity_coefficients([len(m) for m in members])
        for i in range(n_cls):
            base = members[i]
            if len(base) == 0:
                continue
            rows = (np.arange(factor)[:, None] * n + base[None, :]).ravel()
            src = np.tile(base, factor)
            alpha = draw_alpha(len(rows), b, rng)
            if not coeff[i].any():  # no other class in this bin
                alpha[:] = 1.0
            mix_f = np.zeros((len(rows), flux.shape[1]))
            mix_l = np.zeros(len(rows))
            for j in np.flatnonzero(coeff[i]):
                partner = members[j][rng.integers(0, len(members[j]), len(rows))]
                mix_f += coeff[i, j] * flux[partner]
                mix_l += coeff[i, j] * lum[partner]
                y_h[rows, j] = (1.0 - alpha) * coeff[i, j]
            out[rows] = alpha[:, None] * flux[src] + (1.0 - alpha)[:, None] * mix_f
            lum_h[rows] = alpha * lum[src] + (1.0 - alpha) * mix_l
            y_h[rows, i] = alpha
    result = (out, np.tile(classes, factor), -2.5 * np.log10(lum_h))
    return (*result, y_h) if soft_labels else result


def inverse_density_weights(
    features: ArrayLike, classes: ArrayLike, *, k: int = 10, eps: float = 0.0
) -> np.ndarray:
    """Sampling probabilities proportional to the inverse local density, per class.

    OJALA (Appendix B, Eq. 13) samples object ``i`` with ``w_i ~ 1 / (rho(x_i) +
    eps)`` in a class-specific feature space, normalising each class to the same
    total mass. Here ``rho`` is the k-nearest-neighbour density among objects of
    the same class, ``rho ~ k / (n_c r_k^D)`` (``r_k``: distance to the k-th
    neighbour, self excluded; ``D``: the class's feature dimension), computed in
    log space because ``r_k^D`` over- or underflows for large ``D``.

    Parameters
    ----------
    features
        ``(N, D)``. Each class uses the columns that are finite for all its
        members; columns all-NaN within a class are dropped for that class, so
        class-specific spaces can be stacked with NaN padding. A column partly
        NaN within a class is an error.
    classes
        ``(N,)`` labels.
    k
        Neighbour rank (reduced to ``n_c - 1`` for small classes).
    eps
        Smoothing term in units of the class's median kNN density: objects in
        regions emptier than ``eps`` times the median get at most ``1 / eps``
        times the weight of a median-density object (OJALA's guard against
        divergence in empty regions). 0: pure inverse density.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` weights summing to 1, each class to ``1 / n_classes``.
        Objects with ``k`` or more exact duplicates have infinite kNN density
        and get weight 0 (with a warning).
    """
    x = np.asarray(features, dtype=float)
    classes = np.asarray(classes)
    if x.ndim != 2 or len(x) != len(classes):
        raise ValueError("features must be (N, D) with N = len(classes)")
    labels = np.unique(classes)
    w = np.empty(len(x))
    for label in labels:
        idx = np.flatnonzero(classes == label)
        xc = x[idx]
        finite = np.isfinite(xc)
        keep = finite.all(axis=0)
        if np.any(finite[:, ~keep]):
            raise ValueError(f"class {label!r}: features partly NaN within the class")
        xc = xc[:, keep]
        kk = min(k, len(idx) - 1)
        if kk < 1 or xc.shape[1] == 0:
            w[idx] = 1.0 / len(idx)
        else:
            dist, _ = cKDTree(xc).query(xc, k=kk + 1)
            r_k = dist[:, -1]
            w[idx] = _inverse_density(r_k, xc.shape[1], eps)
        w[idx] /= w[idx].sum() * len(labels)
    return w


def _inverse_density(r_k: np.ndarray, dim: int, eps: float) -> np.ndarray:
    """``1 / (rho / rho_median + eps)`` with ``rho ~ r_k**-dim``, in logs (safe for any ``dim``)."""
    if not np.any(r_k > 0):
        return np.ones_like(r_k)
    with np.errstate(divide="ignore"):
        log_r = np.log(r_k)
    log_rel_rho = dim * (np.median(log_r[np.isfinite(log_r)]) - log_r)  # +inf for duplicates
    if np.isinf(log_rel_rho).any():
        warnings.warn(
            f"{np.isinf(log_rel_rho).sum()} objects have >= k exact duplicates (infinite kNN "
            "density) and get weight 0; jitter the features or lower k to keep them",
            stacklevel=3,
        )
    if eps == 0:  # pure 1 / rho, scaled by its maximum so that nothing overflows
        return np.exp(np.min(log_rel_rho) - log_rel_rho)
    with np.errstate(over="ignore"):
        return 1.0 / (np.exp(log_rel_rho) + eps)  # exp overflow -> weight exactly 0


def balanced_split(
    classes: ArrayLike,
    rng: np.random.Generator | int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> np.ndarray:
    """Assign each object to ``train``, ``validation`` or ``test``, stratified by class.

    Within each class (in sorted label order, so the draws are deterministic),
    the members are shuffled and cut into sizes from the fractions, rounded by
    largest remainder so they add up to the class size exactly.

    Parameters
    ----------
    classes
        ``(N,)`` labels.
    rng
        Generator or seed.
    fractions
        Train, validation and test fractions (must sum to 1).

    Returns
    -------
    numpy.ndarray
        ``(N,)`` strings from :data:`SPLITS`.
    """
    frac = np.asarray(fractions, dtype=float)
    if frac.shape != (3,) or np.any(frac < 0) or not np.isclose(frac.sum(), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    rng = np.random.default_rng(rng)
    classes = np.asarray(classes)
    out = np.empty(len(classes), dtype="<U10")
    for label in np.unique(classes):
        idx = rng.permutation(np.flatnonzero(classes == label))
        exact = frac * len(idx)
        sizes = np.floor(exact).astype(int)
        short = len(idx) - sizes.sum()
        sizes[np.argsort(-(exact - sizes), kind="stable")[:short]] += 1
        for name, part in zip(SPLITS, np.split(idx, np.cumsum(sizes)[:-1]), strict=True):
            out[part] = name
    return out


def drop_bands(
    flux: np.ndarray,
    relerr: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    order: np.ndarray,
    keep: int,
) -> np.ndarray:
    """Mark bands missing (NaN, in place) in a ``fraction`` of rows, as real data lack them.

    A spectrum stops short of the bluest or reddest bands (SDSS / BOSS /
    LAMOST start at 3600-3800 A, several end near 9200 A) and masks the odd
    band; a photometric catalogue flags some. A third of the chosen rows lose
    1-3 bands at the blue end, a third 1-3 at the red end, a third 1-4 anywhere.

    Parameters
    ----------
    flux, relerr
        ``(N, B)``, modified in place.
    fraction
        Share of rows with missing bands.
    order
        Band indices sorted by wavelength.
    keep
        A band index never dropped (the reference band of the features).

    Returns
    -------
    numpy.ndarray
        The ``(N, B)`` mask of the dropped bands.
    """
    n, nb = flux.shape
    mask = np.zeros((n, nb), bool)
    rows = np.flatnonzero(rng.random(n) < fraction)
    kind = rng.integers(0, 3, rows.size)
    k = rng.integers(1, 4, rows.size)
    for row, kd, kk in zip(rows, kind, k, strict=True):
        if kd == 0:
            bands = order[:kk]
        elif kd == 1:
            bands = order[-kk:]
        else:
            bands = rng.choice(nb, kk + int(rng.integers(0, 2)), replace=False)
        mask[row, bands] = True
    mask[:, keep] = False
    flux[mask] = np.nan
    relerr[mask] = np.nan
    return mask
