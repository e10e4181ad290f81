"""Metrics of 4-class star / galaxy / QSO classifiers, as plain numpy kernels.

Every function works on in-memory arrays: integer labels ``y_true`` of shape
``(N,)`` indexing :data:`jpasbatch.core.classes.CLASSES`, class probabilities
``probs`` of shape ``(N, K)`` whose rows sum to 1, and optional per-object
``sample_weight``. There is deliberately no scikit-learn, Dask or Ray here: the
kernels run inside training loops and distributed workers, and the test-suite
checks each of them against scikit-learn instead.

Conventions (those of scikit-learn's ``zero_division=0``) where a ratio is
undefined: precision, recall and F1 are 0, never NaN or a warning. The
exception is :func:`evaluate`, which reports per-magnitude-bin tables and marks
classes absent from a bin with NaN (see there).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import pandas as pd

from jpasbatch.core.classes import CLASSES

#: The r-magnitude bins of the miniJPAS QSO papers' tables.
MAGNITUDE_BINS: tuple[tuple[float, float], ...] = ((17, 20), (20, 22.5), (22.5, 23.6))

#: Offset inside the logarithm of :func:`entropy`, so that p = 0 contributes 0.
_ENTROPY_EPS = 1e-14
_QSO = (CLASSES.index("QSO_LOW"), CLASSES.index("QSO_HIGH"))


# --------------------------------------------------------------------------- helpers


def _labels(y: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        # Float labels from a Parquet column are fine as long as they are whole numbers.
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold integer class indices")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    return y


def _probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D (N, K), got shape {probs.shape}")
    return probs


def _weights(sample_weight: np.ndarray | None, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    return w


def _check(probs, y_true, sample_weight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = _probs(probs)
    y = _labels(y_true, probs.shape[1], "y_true")
    if len(y) != len(probs):
        raise ValueError(f"y_true has {len(y)} rows but probs has {len(probs)}")
    return probs, y, _weights(sample_weight, len(y))


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


# --------------------------------------------------------------------------- confusion


def confusion_matrix(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int = 4,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (N,)
        True and predicted class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes K; absent classes still get their row and column.
    sample_weight : ndarray, shape (N,), optional
        Per-object weights.

    Returns
    -------
    ndarray, shape (K, K)
        Counts (int64) without weights, sums of weights (float64) with them, as
        :func:`sklearn.metrics.confusion_matrix`.
    """
    y_true = _labels(y_true, n_classes, "y_true")
    y_pred = _labels(y_pred, n_classes, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    # One bincount over the flattened (true, pred) index: O(N), no Python loop.
    flat = y_true * n_classes + y_pred
    if sample_weight is None:
        cm = np.bincount(flat, minlength=n_classes * n_classes)
    else:
        cm = np.bincount(
            flat, weights=_weights(sample_weight, len(flat)), minlength=n_classes * n_classes
        )
    return cm.reshape(n_classes, n_classes)


def purity_completeness(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class purity (precision) and completeness (recall, true-positive rate).

    Parameters
    ----------
    cm : ndarray, shape (K, K)
        Confusion matrix, rows = true class.

    Returns
    -------
    purity, completeness : ndarray, shape (K,)
        ``TP / predicted`` and ``TP / true``; 0 where the denominator is 0.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    return _divide(tp, cm.sum(axis=0)), _divide(tp, cm.sum(axis=1))


def balanced_purity(cm: np.ndarray) -> np.ndarray:
    """Purity as if every class were equally abundant.

    Each true-class row of the confusion matrix is first normalised to sum 1, so
    row ``i`` holds the fractions of class ``i`` assigned to each class, and
    purity is then computed on that matrix. This is the "balanced" purity of the
    miniJPAS QSO papers: it removes the dependence of purity on the class mix of
    the test set (galaxies outnumber QSOs by orders of magnitude at faint
    magnitudes), so numbers from different samples can be compared.

    Balanced *completeness* needs no function of its own: normalising a row does
    not change its diagonal fraction, so it equals the completeness of
    :func:`purity_completeness`.

    Parameters
    ----------
    cm : ndarray, shape (K, K)
        Confusion matrix, rows = true class.

    Returns
    -------
    ndarray, shape (K,)
        Balanced purity; rows of absent classes stay zero, and a class nothing is
        assigned to gets 0.
    """
    cm = np.asarray(cm, dtype=np.float64)
    rates = _divide(cm, cm.sum(axis=1, keepdims=True))
    return _divide(np.diag(rates), rates.sum(axis=0))


def f1_scores(cm: np.ndarray) -> np.ndarray:
    """Per-class F1 = 2 TP / (2 TP + FP + FN); 0 where undefined.

    Written without going through purity and completeness so that a class with
    TP = 0 gets exactly 0, as in scikit-learn.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return _divide(2 * tp, 2 * tp + fp + fn)


def wilson_interval(
    successes: np.ndarray | float, trials: np.ndarray | float, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion ``successes / trials``.

    ``p = k / n``, ``z`` the two-sided normal quantile of ``confidence``::

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    the interval of ``statsmodels``' ``proportion_confint(method="wilson")``.
    Unlike the normal (Wald) interval it stays inside [0, 1] and is not empty at
    ``k = 0`` or ``k = n``. Counts may be non-integer (effective numbers of
    weighted objects, see :func:`evaluate`). ``trials == 0`` gives (0, 1): no
    information.

    Returns
    -------
    lo, hi : ndarray
        Broadcast shape of the inputs.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z / denom * np.sqrt(np.clip(p * (1 - p), 0, None) / n + z**2 / (4 * n**2))
    empty = n <= 0
    # exact ends at k = 0 and k = n, where rounding would leave 1e-17 from them
    lo = np.where(empty | (k <= 0), 0.0, np.clip(centre - half, 0.0, 1.0))
    hi = np.where(empty | (k >= n), 1.0, np.clip(centre + half, 0.0, 1.0))
    return lo, hi


def _effective_n(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``; the count when all w = 1."""
    w2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / w2 if w2 > 0 else 0.0


def f1_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int = 4,
    sample_weight: np.ndarray | None = None,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class interval on F1 from Wilson intervals on purity and completeness.

    Method (chosen over a bootstrap: deterministic, cheap, and defined for
    a handful of objects): purity ``P = TP / predicted`` and completeness
    ``C = TP / true`` are binomial proportions, each given its Wilson score
    interval (:func:`wilson_interval`) at ``confidence``. F1 = 2PC / (P + C)
    grows with both, so over the box of the two intervals it ranges from
    ``F1(P_lo, C_lo)`` to ``F1(P_hi, C_hi)``: that range is returned. It is
    somewhat wider than a ``confidence`` interval of F1 itself (both ends at
    once), never narrower. With ``sample_weight`` the numbers of trials are
    Kish's effective sample sizes of the predicted and of the true members
    (so weights that only rescale change nothing) and the successes those
    times the weighted purity and completeness.

    Returns
    -------
    lo, hi : ndarray, shape (K,)
        NaN for a class with no true member (its F1 is undefined). A class
        present but never predicted has purity in (0, 1) and F1 from 0 up.
    """
    y_true = _labels(y_true, n_classes, "y_true")
    y_pred = _labels(y_pred, n_classes, "y_pred")
    w = _weights(sample_weight, len(y_true))
    cm = confusion_matrix(y_true, y_pred, n_classes, w)
    purity, completeness = purity_completeness(cm)
    n_pred = np.array([_effective_n(w[y_pred == c]) for c in range(n_classes)])
    n_true = np.array([_effective_n(w[y_true == c]) for c in range(n_classes)])
    p_lo, p_hi = wilson_interval(purity * n_pred, n_pred, confidence)
    c_lo, c_hi = wilson_interval(completeness * n_true, n_true, confidence)
    lo, hi = _divide(2 * p_lo * c_lo, p_lo + c_lo), _divide(2 * p_hi * c_hi, p_hi + c_hi)
    absent = cm.sum(axis=1) <= 0
    lo[absent] = np.nan
    hi[absent] = np.nan
    return lo, hi


def weighted_f1(cm: np.ndarray) -> float:
    """Mean per-class F1 weighted by the true-class support (row sums).

    This follows the natural class abundances, so it is dominated by the common
    classes; 0 for an empty matrix.
    """
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    return float(_divide(np.sum(f1_scores(cm) * support), support.sum()))


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present.

    "Present" means true *or* predicted somewhere (non-zero row or column), the
    labels scikit-learn's ``f1_score(average="macro")`` averages over by default:
    a class that is only ever predicted wrongly counts with F1 = 0, while a class
    that appears nowhere does not drag the mean down. 0 for an empty matrix.
    """
    cm = np.asarray(cm, dtype=np.float64)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    if not present.any():
        return 0.0
    return float(f1_scores(cm)[present].mean())


# --------------------------------------------------------------------------- calibration


class ReliabilityCurve(NamedTuple):
    """One reliability diagram: predicted probability against observed frequency."""

    #: Centres of the equal-width probability bins, shape (n_bins,).
    centres: np.ndarray
    #: (Weighted) mean predicted probability in each bin; NaN for empty bins.
    mean_predicted: np.ndarray
    #: (Weighted) fraction of objects that truly belong to the class; NaN if empty.
    observed_fraction: np.ndarray
    #: Number (sum of weights) of objects in each bin.
    counts: np.ndarray


def reliability_curve(
    probs_c: np.ndarray,
    is_c: np.ndarray,
    n_bins: int = 10,
    sample_weight: np.ndarray | None = None,
) -> ReliabilityCurve:
    """Bin one class's probabilities and compare with how often the class is true.

    Parameters
    ----------
    probs_c : ndarray, shape (N,)
        Predicted probability of the class (or the top-label confidence).
    is_c : ndarray of bool, shape (N,)
        Whether each object truly is of the class (or was classified correctly).
    n_bins : int
        Equal-width bins on [0, 1]; bin ``b`` is ``[b/n, (b+1)/n)``, the last one
        closed so that p = 1 is counted.
    sample_weight : ndarray, shape (N,), optional
        Per-object weights.

    Returns
    -------
    ReliabilityCurve
        ``(centres, mean_predicted, observed_fraction, counts)``, each (n_bins,).
    """
    p = np.asarray(probs_c, dtype=np.float64)
    hit = np.asarray(is_c, dtype=np.float64)
    w = _weights(sample_weight, len(p))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted on the same edges the docstring names, so the bin of a value
    # lying exactly on an edge is well defined (and reproducible in tests).
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, weights=w, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=w * p, minlength=n_bins) / counts
        frac = np.bincount(idx, weights=w * hit, minlength=n_bins) / counts
    empty = counts == 0
    mean_p[empty] = np.nan
    frac[empty] = np.nan
    return ReliabilityCurve(0.5 * (edges[:-1] + edges[1:]), mean_p, frac, counts)


def _ece(curve: ReliabilityCurve) -> float:
    total = curve.counts.sum()
    if total <= 0:
        return float("nan")
    full = curve.counts > 0
    gap = np.abs(curve.mean_predicted[full] - curve.observed_fraction[full])
    return float(np.sum(curve.counts[full] / total * gap))


def expected_calibration_error(
    probs: np.ndarray,
    y_true: np.ndarray,
    n_bins: int = 10,
    per_class: bool = True,
    sample_weight: np.ndarray | None = None,
) -> dict[str, float]:
    """Expected calibration error, top-label and one-vs-rest per class.

    ``ECE = sum_b (n_b / N) |mean(p in b) - frac(true in b)|`` over ``n_bins``
    equal-width bins of [0, 1] (see :func:`reliability_curve`). For class ``c``
    the probability is ``p_c`` and "true" means ``y == c``; for the top label the
    probability is the confidence ``max_c p_c`` and "true" means the argmax is
    correct. With weights, ``n_b`` and ``N`` are sums of weights and the means
    are weighted.

    Parameters
    ----------
    probs : ndarray, shape (N, K)
    y_true : ndarray of int, shape (N,)
    n_bins : int
    per_class : bool
        Also compute the per-class ECEs (otherwise only the top-label one).
    sample_weight : ndarray, shape (N,), optional

    Returns
    -------
    dict of str to float
        ``"ECE"``: top-label ECE, and with ``per_class`` one ``"ECE_<CLASS>"`` per
        class, named after :data:`CLASSES` (``"ECE_<index>"`` if K differs).
        Plain floats, so the dict can go straight into JSON; NaN without data.
    """
    probs, y, w = _check(probs, y_true, sample_weight)
    out = {"ECE": _ece(reliability_curve(probs.max(axis=1), probs.argmax(axis=1) == y, n_bins, w))}
    if per_class:
        for c, name in enumerate(_class_names(probs.shape[1])):
            out[f"ECE_{name}"] = _ece(reliability_curve(probs[:, c], y == c, n_bins, w))
    return out


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row in bits, ``-sum p log2(p + 1e-14)``.

    The offset makes p = 0 contribute 0 without a warning; the result ranges from
    0 (certain) to log2(K) = 2 bits (uniform over the four classes).
    """
    probs = _probs(probs)
    return -np.sum(probs * np.log2(probs + _ENTROPY_EPS), axis=1)


# --------------------------------------------------------------------------- ROC


class RocCurves(NamedTuple):
    """One-vs-rest ROC curves and AUCs, one entry per class."""

    #: False-positive rates per class (arrays starting at 0); all-NaN if no negatives.
    fpr: list[np.ndarray]
    #: True-positive rates per class; all-NaN if the class has no positives.
    tpr: list[np.ndarray]
    #: Decreasing score thresholds per class, the first one ``inf``.
    thresholds: list[np.ndarray]
    #: Area under each curve, shape (K,); NaN where positives or negatives are missing.
    auc: np.ndarray


def _binary_roc(
    score: np.ndarray, positive: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """ROC curve and AUC of one binary problem, reproducing scikit-learn's roc_curve."""
    keep = w != 0  # zero-weight objects would only add duplicate thresholds
    score, positive, w = score[keep], positive[keep].astype(np.float64), w[keep]
    # Stable descending order (argsort of the negated score keeps tied objects in
    # input order), so cumulative sums add in the same order as scikit-learn.
    order = np.argsort(-score, kind="stable")
    score, positive, w = score[order], positive[order], w[order]
    # Tied scores form a single threshold: only the last index of each run of
    # equal scores is a point on the curve, which is what gives a tie between a
    # positive and a negative the half credit of a diagonal segment.
    last = (
        np.r_[np.flatnonzero(np.diff(score)), len(score) - 1] if len(score) else np.array([], int)
    )
    tps = np.cumsum(positive * w)[last]
    fps = np.cumsum((1 - positive) * w)[last]
    thr = score[last]
    # Drop points collinear with their neighbours: they never change the curve
    # or its area and scikit-learn leaves them out too.
    if len(fps) > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps, thr = tps[corner], fps[corner], thr[corner]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    thr = np.r_[np.inf, thr]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    if fps[-1] > 0 and tps[-1] > 0:
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoid rule
    else:
        area = float("nan")
    return fpr, tpr, thr, area


def roc_auc(
    probs: np.ndarray, y_true: np.ndarray, sample_weight: np.ndarray | None = None
) -> RocCurves:
    """One-vs-rest ROC curve and area under it for every class.

    Class ``c`` is scored by ``p_c``, positives are ``y == c``. Curves and AUCs
    equal :func:`sklearn.metrics.roc_curve` (``drop_intermediate=True``) and
    :func:`sklearn.metrics.roc_auc_score` on that binary problem, ties included
    (a tie between a positive and a negative contributes a diagonal segment, i.e.
    half credit). A class with no positives, or with only positives, has an
    undefined curve: its AUC is NaN rather than an error.

    Parameters
    ----------
    probs : ndarray, shape (N, K)
    y_true : ndarray of int, shape (N,)
    sample_weight : ndarray, shape (N,), optional

    Returns
    -------
    RocCurves
        ``(fpr, tpr, thresholds, auc)``: lists of K arrays and an (K,) array.
    """
    probs, y, w = _check(probs, y_true, sample_weight)
    curves = [_binary_roc(probs[:, c], y == c, w) for c in range(probs.shape[1])]
    return RocCurves(
        [c[0] for c in curves],
        [c[1] for c in curves],
        [c[2] for c in curves],
        np.array([c[3] for c in curves]),
    )


# --------------------------------------------------------------------------- counts


def qso_number_estimate(
    probs: np.ndarray, y_true: np.ndarray, sample_weight: np.ndarray | None = None
) -> dict[str, float]:
    """Number of QSOs estimated by summing probabilities, against the truth.

    Summing P_QSO over a sample is an unbiased estimate of the number of QSOs
    when the probabilities are calibrated, with no threshold to choose; the gap
    to the true count is a direct test of calibration where it matters for
    QSO number counts.

    Returns
    -------
    dict of str to float
        ``N_QSO_LOW_EST``, ``N_QSO_HIGH_EST``, ``N_QSO_EST`` (their sum) and the
        matching ``*_TRUE`` counts (sums of weights if weights are given).
    """
    probs, y, w = _check(probs, y_true, sample_weight)
    lo, hi = _QSO
    est_lo, est_hi = float(np.sum(w * probs[:, lo])), float(np.sum(w * probs[:, hi]))
    true_lo, true_hi = float(np.sum(w[y == lo])), float(np.sum(w[y == hi]))
    return {
        "N_QSO_LOW_EST": est_lo,
        "N_QSO_HIGH_EST": est_hi,
        "N_QSO_EST": est_lo + est_hi,
        "N_QSO_LOW_TRUE": true_lo,
        "N_QSO_HIGH_TRUE": true_hi,
        "N_QSO_TRUE": true_lo + true_hi,
    }


# --------------------------------------------------------------------------- bins


def magnitude_bins() -> tuple[tuple[float, float], ...]:
    """The fixed r-magnitude bins of the miniJPAS QSO papers, :data:`MAGNITUDE_BINS`."""
    return MAGNITUDE_BINS


def sliding_bins(
    lo: float = 17.0, hi: float = 23.6, width: float = 1.0, step: float = 0.25
) -> tuple[tuple[float, float], ...]:
    """Overlapping magnitude windows ``(start, start + width)`` every ``step``.

    Windows start at ``lo`` and stop once they would pass ``hi``; if the last one
    ends short of ``hi`` a final window ``(hi - width, hi)`` is added so the faint
    end is always covered. Values are rounded to 1e-6 to hide float noise in the
    bin labels.
    """
    if width <= 0 or step <= 0 or hi - lo < width:
        raise ValueError(f"need width, step > 0 and hi - lo >= width; got {lo}, {hi}, {width}")
    n = int(np.floor((hi - width - lo) / step + 1e-9)) + 1
    bins = [(round(lo + k * step, 6), round(lo + k * step + width, 6)) for k in range(n)]
    if bins[-1][1] < hi - 1e-9:
        bins.append((round(hi - width, 6), round(hi, 6)))
    return tuple(bins)


# --------------------------------------------------------------------------- tables


def _class_names(k: int) -> tuple[str, ...]:
    return CLASSES if k == len(CLASSES) else tuple(str(i) for i in range(k))


def _columns(names: Sequence[str]) -> list[str]:
    cols = ["bin", "lo", "hi", "n", "weighted_f1", "macro_f1"]
    for prefix in ("F1", "F1_LO", "F1_HI", "PURITY", "BALANCED_PURITY", "COMPLETENESS", "ECE"):
        cols += [f"{prefix}_{c}" for c in names]
    cols += ["ECE", *[f"AUC_{c}" for c in names], "ENTROPY", "N_QSO_EST", "N_QSO_TRUE"]
    return cols


def _row(probs: np.ndarray, y: np.ndarray, w: np.ndarray, names: Sequence[str]) -> dict:
    """Every metric of one subset; ``probs`` non-empty."""
    k = probs.shape[1]
    cm = confusion_matrix(y, probs.argmax(axis=1), k, w)
    purity, completeness = purity_completeness(cm)
    f1 = f1_scores(cm)
    # A class with no true member has no completeness and no ROC curve, and its
    # F1 is 0 only by convention: NaN keeps it out of plots and nanmeans.
    absent = cm.sum(axis=1) <= 0
    f1[absent] = np.nan
    completeness[absent] = np.nan
    f1_lo, f1_hi = f1_interval(y, probs.argmax(axis=1), k, w)
    row = {"weighted_f1": weighted_f1(cm), "macro_f1": macro_f1(cm)}
    for prefix, values in (
        ("F1", f1),
        ("F1_LO", f1_lo),
        ("F1_HI", f1_hi),
        ("PURITY", purity),
        ("BALANCED_PURITY", balanced_purity(cm)),
        ("COMPLETENESS", completeness),
    ):
        row |= {f"{prefix}_{c}": float(v) for c, v in zip(names, values, strict=True)}
    row |= expected_calibration_error(probs, y, sample_weight=w)
    auc = roc_auc(probs, y, w).auc
    row |= {f"AUC_{c}": float(v) for c, v in zip(names, auc, strict=True)}
    row["ENTROPY"] = float(np.average(entropy(probs), weights=w)) if w.sum() > 0 else np.nan
    if k == len(CLASSES):
        q = qso_number_estimate(probs, y, w)
        row |= {"N_QSO_EST": q["N_QSO_EST"], "N_QSO_TRUE": q["N_QSO_TRUE"]}
    return row


def evaluate(
    probs: np.ndarray,
    y_true: np.ndarray,
    mag: np.ndarray,
    bins: Sequence[tuple[float, float]] | None = None,
    sample_weight: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every metric in magnitude bins, plus the whole sample.

    Parameters
    ----------
    probs : ndarray, shape (N, K)
    y_true : ndarray of int, shape (N,)
    mag : ndarray, shape (N,)
        Magnitude used for binning (r band); an object is in bin ``(lo, hi)`` if
        ``lo <= mag < hi``; NaN magnitudes fall in no bin.
    bins : sequence of (lo, hi), optional
        Defaults to :data:`MAGNITUDE_BINS`; may overlap (see :func:`sliding_bins`).
    sample_weight : ndarray, shape (N,), optional
        Weights for every metric; ``n`` stays the plain number of objects.

    Returns
    -------
    pandas.DataFrame
        One row per bin, in order, then a row ``bin == "all"`` over every object
        (``lo``, ``hi`` NaN). Columns: ``bin`` (label such as ``"17-20"``), ``lo``,
        ``hi``, ``n``, ``weighted_f1``, ``macro_f1``, then per class ``F1_<C>``,
        ``F1_LO_<C>`` and ``F1_HI_<C>`` (its 95% interval, :func:`f1_interval`),
        ``PURITY_<C>``, ``BALANCED_PURITY_<C>``, ``COMPLETENESS_<C>``, ``ECE_<C>``,
        then ``ECE`` (top label), ``AUC_<C>``, ``ENTROPY`` (mean, bits),
        ``N_QSO_EST`` and ``N_QSO_TRUE``.

    Notes
    -----
    A bin without objects gives a row of NaN metrics (``n == 0``), not an error.
    For a class with no true member in a bin, ``F1_<C>`` (and its interval),
    ``COMPLETENESS_<C>`` and ``AUC_<C>`` are NaN (undefined, rather than the 0 of
    the plain kernels), and so is ``AUC_<C>`` for a class that is the only one
    present. ``PURITY_<C>`` keeps the 0 convention; ``weighted_f1`` and
    ``macro_f1`` are those of :func:`weighted_f1` and :func:`macro_f1`.
    """
    probs, y, w = _check(probs, y_true, sample_weight)
    mag = np.asarray(mag, dtype=np.float64)
    if mag.shape != y.shape:
        raise ValueError(f"mag has shape {mag.shape}, expected {y.shape}")
    names = _class_names(probs.shape[1])
    columns = _columns(names)
    bins = MAGNITUDE_BINS if bins is None else bins
    rows = []
    selections = [(f"{lo:g}-{hi:g}", lo, hi, (mag >= lo) & (mag < hi)) for lo, hi in bins]
    selections.append(("all", np.nan, np.nan, np.ones(len(y), dtype=bool)))
    for label, lo, hi, sel in selections:
        row = {"bin": label, "lo": float(lo), "hi": float(hi), "n": int(sel.sum())}
        if sel.any():
            row |= _row(probs[sel], y[sel], w[sel], names)
        rows.append(row)
    # reindex fills the metrics of empty bins with NaN and fixes the column order.
    return pd.DataFrame(rows).reindex(columns=columns)


def summary(
    probs: np.ndarray, y_true: np.ndarray, sample_weight: np.ndarray | None = None
) -> dict[str, float]:
    """Headline numbers for tables: weighted and macro F1, top-label ECE, F1 per class.

    Returns
    -------
    dict of str to float
        ``weighted_f1``, ``macro_f1``, ``ece`` and ``F1_<CLASS>`` (plain F1, 0 for
        an absent class), as plain floats ready for JSON.
    """
    probs, y, w = _check(probs, y_true, sample_weight)
    cm = confusion_matrix(y, probs.argmax(axis=1), probs.shape[1], w)
    out = {
        "weighted_f1": weighted_f1(cm),
        "macro_f1": macro_f1(cm),
        "ece": expected_calibration_error(probs, y, per_class=False, sample_weight=w)["ECE"],
    }
    names = _class_names(probs.shape[1])
    out |= {f"F1_{c}": float(v) for c, v in zip(names, f1_scores(cm), strict=True)}
    return out
