"""Metrics against hand computations, sampling weights, the fine-tuning head, the benchmark."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.foundation.evaluate import (
    balanced_scores,
    evaluate,
    photoz_stats,
    residual_stats,
    sliding_windows,
)
from jpasbatch.foundation.finetune import finetune_head
from jpasbatch.foundation.sampling import sampling_weights


def test_photoz_stats_by_hand():
    z = np.array([0.0, 1.0, 1.0, 2.0, 0.5])
    zp = z + np.array([0.01, 0.04, -0.02, 0.9, 0.0]) * (1 + z)  # dz: .01 .04 -.02 .9 0
    s = photoz_stats(zp, z)
    assert s["n"] == 5 and s["bias"] == pytest.approx(0.01)
    # |dz - 0.01|: 0, .03, .03, .89, .01 -> median .03
    assert s["nmad"] == pytest.approx(1.48 * 0.03) and s["outliers"] == pytest.approx(0.2)
    assert residual_stats(np.array([1.0, 2.0, np.nan]))["n"] == 2


def test_balanced_scores_follow_ojala_equations():
    # 90 galaxies (10 called stars), 10 stars (5 called galaxies)
    y = np.array([1] * 90 + [0] * 10)
    pred = np.array([1] * 80 + [0] * 10 + [0] * 5 + [1] * 5)
    s = balanced_scores(y, pred, 2)
    # row-normalised: star (0.5, 0.5), galaxy (1/9, 8/9)
    c = np.array([0.5, 8 / 9])
    p = np.array([0.5 / (0.5 + 1 / 9), (8 / 9) / (8 / 9 + 0.5)])
    np.testing.assert_allclose(s["completeness"], c)
    np.testing.assert_allclose(s["purity"], p)
    np.testing.assert_allclose(s["f1"], 2 * p * c / (p + c))
    assert s["weighted_f1"] == pytest.approx(np.mean(2 * p * c / (p + c)))
    assert sliding_windows(16, 16.6)[1] == pytest.approx((16.0, 16.3, 16.6))


def test_evaluate_perfect_predictions(mock_dir):
    table = pq.read_table(mock_dir / "part-00000.parquet")
    y = np.array([CLASSES.index(c) for c in table["CLASS"].to_pylist()])
    cols = {f"P_{c}": (y == k).astype(np.float32) for k, c in enumerate(CLASSES)}
    cols["Z_PHOT"] = table["Z"].to_numpy().astype(np.float32)
    for name in ("TEFF", "EW_HALPHA"):
        cols[name] = np.nan_to_num(table[name].to_numpy(zero_copy_only=False), nan=1.0)
    r = evaluate(cols, table)
    assert r["class4_all"]["weighted_f1"] == pytest.approx(1.0)
    assert r["photoz"]["GALAXY"]["all"]["nmad"] == pytest.approx(0, abs=1e-6)
    assert r["params"]["TEFF"]["nmad"] == 0 and r["params"]["EW_HALPHA"]["bias"] == 0
    shown = r["class3"].dropna(subset=["weighted_f1"])
    assert len(shown) and np.allclose(shown["weighted_f1"], 1)


def test_sampling_weights_give_each_class_a_third_and_flatten_qso_redshifts(mock_dir):
    table = pa.concat_tables([pq.read_table(p) for p in sorted(mock_dir.glob("*.parquet"))])
    w = sampling_weights(table, np.random.default_rng(0))
    cls = np.array(table["CLASS"].to_pylist())
    merged = np.where(np.char.startswith(cls, "QSO"), "QSO", cls)
    for c in ("STAR", "GALAXY", "QSO"):
        assert w[merged == c].sum() == pytest.approx(1 / 3)
    z = table["Z"].to_numpy()
    qso = merged == "QSO"
    # the weighted QSO redshift distribution is flatter than the drawn one
    edges = np.quantile(z[qso], [0, 0.5, 1])
    lo, hi = (z[qso] < edges[1]), (z[qso] >= edges[1])
    assert w[qso][hi].sum() / w[qso][lo].sum() > 0.5  # equal counts: no worse than 2:1
    assert np.std(w[qso]) > 0


def test_finetuned_head_learns_a_hidden_label():
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 1, (1500, 16)).astype(np.float32)
    y = np.tanh(emb[:, 0]) + 0.5 * emb[:, 1] ** 2 + rng.normal(0, 0.05, 1500)
    head = finetune_head(emb[:1000], y[:1000], epochs=150, seed=0)
    mu, sigma = head.predict(emb[1000:])
    r = mu - y[1000:]
    assert np.std(r) < 0.3 * np.std(y[1000:])
    assert 0.5 < np.std(r / sigma) < 2.0  # calibrated errors
