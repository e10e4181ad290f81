"""The numpy metric kernels against scikit-learn, scipy and brute-force loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from sklearn import metrics as skm

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.core import metrics as m

K = len(CLASSES)
SEEDS = (0, 1, 2, 3)


def _data(seed: int, n: int = 400, missing: int | None = None, ties: bool = False):
    """Random probabilities loosely correlated with random labels, and weights."""
    rng = np.random.default_rng(seed)
    classes = [c for c in range(K) if c != missing]
    y = rng.choice(
        classes, size=n, p=np.linspace(4, 1, len(classes)) / np.linspace(4, 1, len(classes)).sum()
    )
    logits = rng.normal(size=(n, K)) + 1.5 * np.eye(K)[y]
    if ties:
        # Coarse logits give many tied scores, the hard case of ROC curves.
        logits = np.round(logits)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    if ties:
        p = np.round(p, 1)
        p /= p.sum(axis=1, keepdims=True)
    w = rng.uniform(0.2, 3.0, size=n)
    return p, y, w


CASES = [
    pytest.param(seed, missing, weighted, id=f"s{seed}-miss{missing}-w{int(weighted)}")
    for seed in SEEDS
    for missing in (None, 2)
    for weighted in (False, True)
]


@pytest.mark.parametrize(("seed", "missing", "weighted"), CASES)
def test_confusion_and_scores_match_sklearn(seed, missing, weighted):
    p, y, w = _data(seed, missing=missing)
    w = w if weighted else None
    pred = p.argmax(axis=1)
    cm = m.confusion_matrix(y, pred, K, w)
    ref = skm.confusion_matrix(y, pred, labels=range(K), sample_weight=w)
    np.testing.assert_allclose(cm, ref)
    assert cm.dtype == (np.float64 if weighted else np.int64)

    purity, completeness = m.purity_completeness(cm)
    kw = {"labels": list(range(K)), "average": None, "sample_weight": w, "zero_division": 0}
    np.testing.assert_allclose(purity, skm.precision_score(y, pred, **kw), atol=1e-12)
    np.testing.assert_allclose(completeness, skm.recall_score(y, pred, **kw), atol=1e-12)
    np.testing.assert_allclose(m.f1_scores(cm), skm.f1_score(y, pred, **kw), atol=1e-12)
    for average, ours in (("weighted", m.weighted_f1), ("macro", m.macro_f1)):
        # No `labels`: scikit-learn then averages over the labels present, as macro_f1 does.
        ref = skm.f1_score(y, pred, average=average, sample_weight=w, zero_division=0)
        assert ours(cm) == pytest.approx(ref, abs=1e-12)


def test_macro_f1_counts_false_positive_only_class_as_zero():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 3, 1, 1])  # class 3 never true but predicted; class 2 nowhere
    cm = m.confusion_matrix(y, pred)
    assert m.macro_f1(cm) == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m.macro_f1(cm) == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(ValueError, match="lie in"):
        m.confusion_matrix(np.array([0, 4]), np.array([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        m.confusion_matrix(np.array([0.5, 1.0]), np.array([0, 1]))


def test_balanced_purity_by_hand():
    cm = np.array(
        [
            [90, 10, 0, 0],  # 100 stars
            [20, 880, 80, 20],  # 1000 galaxies
            [0, 5, 40, 5],  # 50 low-z QSOs
            [0, 0, 10, 0],  # 10 high-z QSOs, none recovered
        ]
    )
    rates = np.array(
        [
            [0.9, 0.1, 0.0, 0.0],
            [0.02, 0.88, 0.08, 0.02],
            [0.0, 0.1, 0.8, 0.1],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )
    expected = [
        0.9 / (0.9 + 0.02),
        0.88 / (0.1 + 0.88 + 0.1),
        0.8 / (0.08 + 0.8 + 1.0),
        0.0,
    ]
    np.testing.assert_allclose(m.balanced_purity(cm), expected)
    # Balanced completeness is the plain completeness, and purity changes with the mix.
    np.testing.assert_allclose(m.purity_completeness(cm)[1], np.diag(rates))
    assert m.purity_completeness(cm)[0][2] == pytest.approx(40 / 130)
    # Scaling one class's row leaves the balanced purity unchanged.
    scaled = cm.astype(float)
    scaled[1] *= 37
    np.testing.assert_allclose(m.balanced_purity(scaled), expected)


def _brute_ece(p, hit, w, n_bins=10):
    edges = np.linspace(0, 1, n_bins + 1)
    total, ece = sum(w), 0.0
    for b in range(n_bins):
        members = [
            i
            for i in range(len(p))
            if edges[b] <= p[i] < edges[b + 1] or (b == n_bins - 1 and p[i] == 1.0)
        ]
        if not members:
            continue
        wb = sum(w[i] for i in members)
        mean_p = sum(w[i] * p[i] for i in members) / wb
        frac = sum(w[i] * hit[i] for i in members) / wb
        ece += wb / total * abs(mean_p - frac)
    return ece


@pytest.mark.parametrize(("seed", "missing", "weighted"), CASES)
def test_ece_matches_brute_force(seed, missing, weighted):
    p, y, w = _data(seed, n=150, missing=missing)
    w = w if weighted else np.ones(len(y))
    p[0] = np.eye(K)[y[0]]  # a probability of exactly 1 and exactly 0
    ece = m.expected_calibration_error(p, y, sample_weight=w)
    assert set(ece) == {"ECE", *(f"ECE_{c}" for c in CLASSES)}
    for c, name in enumerate(CLASSES):
        assert ece[f"ECE_{name}"] == pytest.approx(_brute_ece(p[:, c], y == c, w), abs=1e-12)
    top = _brute_ece(p.max(axis=1), p.argmax(axis=1) == y, w)
    assert ece["ECE"] == pytest.approx(top, abs=1e-12)
    only_top = m.expected_calibration_error(p, y, per_class=False, sample_weight=w)
    assert only_top == {"ECE": ece["ECE"]}


def test_ece_of_calibrated_probabilities_is_small():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(K), size=40_000)
    y = np.array([rng.choice(K, p=row) for row in p[:5000]])
    ece = m.expected_calibration_error(p[:5000], y)
    assert max(ece.values()) < 0.04
    overconfident = np.eye(K)[p[:5000].argmax(axis=1)]
    assert m.expected_calibration_error(overconfident, y)["ECE"] > 0.2


def test_reliability_curve_bins():
    p = np.array([0.0, 0.05, 0.15, 0.95, 1.0, 1.0])
    hit = np.array([0, 1, 0, 1, 1, 0], dtype=bool)
    curve = m.reliability_curve(p, hit, n_bins=10)
    np.testing.assert_allclose(curve.centres, np.arange(10) / 10 + 0.05)
    np.testing.assert_allclose(curve.counts, [2, 1, 0, 0, 0, 0, 0, 0, 0, 3])
    np.testing.assert_allclose(curve.mean_predicted[[0, 1, 9]], [0.025, 0.15, 2.95 / 3])
    np.testing.assert_allclose(curve.observed_fraction[[0, 1, 9]], [0.5, 0.0, 2 / 3])
    assert np.isnan(curve.mean_predicted[2]) and np.isnan(curve.observed_fraction[2])


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_matches_scipy(seed):
    p, _, _ = _data(seed, n=200, ties=True)  # ties=True gives exact zeros too
    assert (p == 0).any()
    np.testing.assert_allclose(m.entropy(p), scipy.stats.entropy(p, base=2, axis=1), atol=1e-10)
    assert m.entropy(np.full((1, K), 0.25))[0] == pytest.approx(2.0)
    assert m.entropy(np.eye(K)[[1]])[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("seed", "missing", "weighted"), CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_roc_matches_sklearn(seed, missing, weighted, ties):
    p, y, w = _data(seed, missing=missing, ties=ties)
    w = w if weighted else None
    roc = m.roc_auc(p, y, w)
    assert roc.auc.shape == (K,)
    for c in range(K):
        if c == missing:
            assert np.isnan(roc.auc[c])
            assert np.isnan(roc.tpr[c]).all()
            continue
        fpr, tpr, thr = skm.roc_curve(y == c, p[:, c], sample_weight=w)
        np.testing.assert_allclose(roc.fpr[c], fpr, atol=1e-12)
        np.testing.assert_allclose(roc.tpr[c], tpr, atol=1e-12)
        np.testing.assert_allclose(roc.thresholds[c], thr)
        ref = skm.roc_auc_score(y == c, p[:, c], sample_weight=w)
        assert roc.auc[c] == pytest.approx(ref, abs=1e-12)
    if missing is None:
        ovr = skm.roc_auc_score(y, p, multi_class="ovr", average=None, sample_weight=w)
        np.testing.assert_allclose(roc.auc, ovr, atol=1e-12)


def test_roc_ties_give_half_credit():
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.1, 0.9]])
    auc = m.roc_auc(p, y).auc
    # Class 1: one positive above every negative, one tied with a negative.
    assert auc[1] == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
    assert auc[1] == pytest.approx(0.875)


def test_qso_number_estimate():
    p, y, w = _data(7)
    q = m.qso_number_estimate(p, y, w)
    lo, hi = CLASSES.index("QSO_LOW"), CLASSES.index("QSO_HIGH")
    assert q["N_QSO_LOW_EST"] == pytest.approx(np.sum(w * p[:, lo]))
    assert q["N_QSO_HIGH_EST"] == pytest.approx(np.sum(w * p[:, hi]))
    assert q["N_QSO_EST"] == pytest.approx(q["N_QSO_LOW_EST"] + q["N_QSO_HIGH_EST"])
    assert q["N_QSO_TRUE"] == pytest.approx(w[(y == lo) | (y == hi)].sum())
    assert m.qso_number_estimate(p, y)["N_QSO_LOW_TRUE"] == np.sum(y == lo)


def test_bins():
    assert m.magnitude_bins() == m.MAGNITUDE_BINS == ((17, 20), (20, 22.5), (22.5, 23.6))
    bins = m.sliding_bins()
    assert bins[0] == (17.0, 18.0) and bins[1] == (17.25, 18.25)
    assert bins[-1] == (22.6, 23.6)  # the faint end is always covered
    assert all(hi - lo == pytest.approx(1.0) for lo, hi in bins)
    assert all(hi <= 23.6 + 1e-9 for _, hi in bins)
    assert m.sliding_bins(17, 20, 1, 0.5) == (
        (17, 18),
        (17.5, 18.5),
        (18, 19),
        (18.5, 19.5),
        (19, 20),
    )
    with pytest.raises(ValueError):
        m.sliding_bins(17, 17.5, 1.0)


def _reference_row(p, y, w):
    """The metrics of one subset straight from scikit-learn (and the kernels for ECE)."""
    pred = p.argmax(axis=1)
    kw = {"labels": list(range(K)), "average": None, "sample_weight": w, "zero_division": 0}
    support = np.bincount(y, minlength=K) > 0
    f1 = np.where(support, skm.f1_score(y, pred, **kw), np.nan)
    recall = np.where(support, skm.recall_score(y, pred, **kw), np.nan)
    row = {
        "n": len(y),
        "weighted_f1": skm.f1_score(y, pred, average="weighted", sample_weight=w, zero_division=0),
        "macro_f1": skm.f1_score(y, pred, average="macro", sample_weight=w, zero_division=0),
        "ECE": m.expected_calibration_error(p, y, sample_weight=w)["ECE"],
        "ENTROPY": np.average(scipy.stats.entropy(p, base=2, axis=1), weights=w),
    }
    precision = skm.precision_score(y, pred, **kw)
    for c, name in enumerate(CLASSES):
        row[f"F1_{name}"] = f1[c]
        row[f"PURITY_{name}"] = precision[c]
        row[f"COMPLETENESS_{name}"] = recall[c]
        row[f"ECE_{name}"] = _brute_ece(p[:, c], y == c, np.ones(len(y)) if w is None else w)
        both = support[c] and not support.sum() == 1
        row[f"AUC_{name}"] = skm.roc_auc_score(y == c, p[:, c], sample_weight=w) if both else np.nan
    qso = np.isin(y, [2, 3])
    ww = np.ones(len(y)) if w is None else w
    row["N_QSO_EST"] = np.sum(ww * (p[:, 2] + p[:, 3]))
    row["N_QSO_TRUE"] = ww[qso].sum()
    return row


@pytest.mark.parametrize("weighted", [False, True])
def test_evaluate_bins_equal_metrics_on_subsets(weighted):
    p, y, w = _data(11, n=600)
    rng = np.random.default_rng(11)
    mag = rng.uniform(16.5, 24.0, size=len(y))
    # The faint bin loses its high-z QSOs, to exercise a class absent from a bin.
    y[(mag >= 22.5) & (y == 3)] = 1
    w = w if weighted else None
    bins = [*m.MAGNITUDE_BINS, (30.0, 31.0)]  # the last bin is empty
    table = m.evaluate(p, y, mag, bins=bins, sample_weight=w)

    assert list(table["bin"]) == ["17-20", "20-22.5", "22.5-23.6", "30-31", "all"]
    assert list(table.columns[:6]) == ["bin", "lo", "hi", "n", "weighted_f1", "macro_f1"]
    for prefix in ("F1", "PURITY", "BALANCED_PURITY", "COMPLETENESS", "ECE", "AUC"):
        assert all(f"{prefix}_{c}" in table for c in CLASSES)
    selections = [(mag >= lo) & (mag < hi) for lo, hi in bins] + [np.ones(len(y), bool)]
    for (_, row), sel in zip(table.iterrows(), selections, strict=True):
        if not sel.any():
            assert row["n"] == 0
            assert row.drop(["bin", "lo", "hi", "n"]).isna().all()
            continue
        ws = None if w is None else w[sel]
        ref = _reference_row(p[sel], y[sel], ws)
        for key, value in ref.items():
            np.testing.assert_allclose(row[key], value, atol=1e-10, err_msg=f"{row['bin']} {key}")
        cm = m.confusion_matrix(y[sel], p[sel].argmax(axis=1), K, ws)
        got = row[[f"BALANCED_PURITY_{c}" for c in CLASSES]].to_numpy(float)
        np.testing.assert_allclose(got, m.balanced_purity(cm))
    faint = table.set_index("bin").loc["22.5-23.6"]
    assert np.isnan(faint["F1_QSO_HIGH"]) and np.isnan(faint["AUC_QSO_HIGH"])
    assert faint["N_QSO_TRUE"] > 0


def test_evaluate_single_class_bin_and_all_empty():
    p, y, _ = _data(3, n=50)
    y[:] = 1
    table = m.evaluate(p, y, np.full(len(y), 18.0))
    first = table.iloc[0]
    assert first["n"] == 50
    assert np.isnan(first[[f"AUC_{c}" for c in CLASSES]].to_numpy(float)).all()
    assert first["COMPLETENESS_GALAXY"] == pytest.approx(np.mean(p.argmax(axis=1) == 1))
    assert table.iloc[1]["n"] == 0 and np.isnan(table.iloc[1]["weighted_f1"])
    empty = m.evaluate(np.zeros((0, K)), np.zeros(0, int), np.zeros(0))
    assert len(empty) == 4 and (empty["n"] == 0).all() and empty["ECE"].isna().all()


def test_summary():
    p, y, w = _data(4)
    s = m.summary(p, y)
    cm = m.confusion_matrix(y, p.argmax(axis=1))
    assert set(s) == {"weighted_f1", "macro_f1", "ece", *(f"F1_{c}" for c in CLASSES)}
    assert s["weighted_f1"] == pytest.approx(skm.f1_score(y, p.argmax(axis=1), average="weighted"))
    assert s["macro_f1"] == pytest.approx(m.macro_f1(cm))
    assert s["ece"] == pytest.approx(m.expected_calibration_error(p, y)["ECE"])
    assert all(isinstance(v, float) for v in s.values())
    assert m.summary(p, y, w)["weighted_f1"] != s["weighted_f1"]
    assert isinstance(pd.Series(s).to_json(), str)


def _wilson_reference(k, n, confidence):
    """Wilson's interval in the form (2k + z^2 +- z sqrt(z^2 + 4k(n-k)/n)) / 2(n + z^2)."""
    z = scipy.stats.norm.ppf(1 - (1 - confidence) / 2)
    k, n = np.asarray(k, float), np.asarray(n, float)
    root = z * np.sqrt(z**2 + 4 * k * (n - k) / n)
    return (2 * k + z**2 - root) / (2 * (n + z**2)), (2 * k + z**2 + root) / (2 * (n + z**2))


@pytest.mark.parametrize("confidence", [0.68, 0.95, 0.99])
def test_wilson_interval_matches_the_closed_form(confidence):
    k = np.array([0, 1, 3, 7, 50, 99, 100, 2, 0.0, 12.5])
    n = np.array([10, 10, 4, 20, 100, 100, 100, 2, 1, 30.0])
    lo, hi = m.wilson_interval(k, n, confidence)
    ref_lo, ref_hi = _wilson_reference(k, n, confidence)
    np.testing.assert_allclose(lo, ref_lo, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-12)
    assert np.all((lo <= k / n) & (k / n <= hi)) and np.all((lo >= 0) & (hi <= 1))
    # two textbook numbers: 0 of 10 and 5 of 10 at 95%
    np.testing.assert_allclose(m.wilson_interval(0, 10), (0.0, 0.27753), atol=5e-5)
    np.testing.assert_allclose(m.wilson_interval(5, 10), (0.23659, 0.76341), atol=5e-5)
    assert tuple(m.wilson_interval(0, 0)) == (0.0, 1.0)


def test_wilson_interval_against_statsmodels():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    k, n = np.array([0, 3, 17, 40]), np.array([5, 9, 40, 40])
    ref = proportion.proportion_confint(k, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(m.wilson_interval(k, n), ref, atol=1e-12)


def test_f1_interval_from_wilson_purity_and_completeness():
    p, y, w = _data(5, n=300, missing=3)
    pred = p.argmax(axis=1)
    lo, hi = m.f1_interval(y, pred, K)
    cm = m.confusion_matrix(y, pred, K)
    f1 = m.f1_scores(cm)
    for c in range(K):
        if c == 3:  # absent class: undefined
            assert np.isnan(lo[c]) and np.isnan(hi[c])
            continue
        tp, n_pred, n_true = cm[c, c], (pred == c).sum(), (y == c).sum()
        p_lo, p_hi = _wilson_reference(tp, n_pred, 0.95)
        c_lo, c_hi = _wilson_reference(tp, n_true, 0.95)
        assert lo[c] == pytest.approx(2 * p_lo * c_lo / (p_lo + c_lo))
        assert hi[c] == pytest.approx(2 * p_hi * c_hi / (p_hi + c_hi))
        assert lo[c] < f1[c] < hi[c]
    # weights that only rescale change nothing (Kish's effective counts)
    np.testing.assert_allclose(m.f1_interval(y, pred, K, np.full(len(y), 3.7)), (lo, hi))
    # real weights give other effective counts, still around the weighted F1
    wlo, whi = m.f1_interval(y, pred, K, w)
    wf1 = m.f1_scores(m.confusion_matrix(y, pred, K, w))
    assert np.all((wlo[:3] < wf1[:3]) & (wf1[:3] < whi[:3]))
    assert not np.allclose(wlo[:3], lo[:3])
    # more objects, same rates: a narrower interval
    big_lo, big_hi = m.f1_interval(np.tile(y, 10), np.tile(pred, 10), K)
    assert np.all((big_hi - big_lo)[:3] < (hi - lo)[:3])


def test_evaluate_table_carries_f1_interval_and_nan_for_empty_bins():
    p, y, _ = _data(6, n=400)
    mag = np.random.default_rng(99).uniform(17, 22, len(y))  # nothing fainter than 22
    bins = [(17.0, 20.0), (20.0, 22.5), (22.5, 23.6)]
    table = m.evaluate(p, y, mag, bins=bins).set_index("bin")
    for c in CLASSES:
        ok = table.loc[["17-20", "20-22.5", "all"]]
        assert (ok[f"F1_LO_{c}"] <= ok[f"F1_{c}"]).all()
        assert (ok[f"F1_{c}"] <= ok[f"F1_HI_{c}"]).all()
    sel = mag < 20
    lo, hi = m.f1_interval(y[sel], p[sel].argmax(axis=1), K)
    np.testing.assert_allclose(table.loc["17-20", [f"F1_LO_{c}" for c in CLASSES]], lo)
    np.testing.assert_allclose(table.loc["17-20", [f"F1_HI_{c}" for c in CLASSES]], hi)
    empty = table.loc["22.5-23.6"]
    assert empty["n"] == 0
    for prefix in ("F1", "F1_LO", "F1_HI", "PURITY", "COMPLETENESS"):
        values = empty[[f"{prefix}_{c}" for c in CLASSES]].to_numpy(float)
        assert np.isnan(values).all(), prefix  # NaN, never 0
    assert np.isnan(empty["weighted_f1"]) and np.isnan(empty["macro_f1"])
