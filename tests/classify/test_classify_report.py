"""The classification report: files, figures, HTML links and tables."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify import metrics, report

K = len(CLASSES)


def _data(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    logits = rng.normal(size=(n, K)) + 2.0 * np.eye(K)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mag = rng.uniform(17, 23.6, n)
    snr = 10 ** rng.uniform(0, 2.5, n)
    snr[:3] = [np.inf, 0.0, np.nan]  # not drawable on a log axis, must be skipped
    return p, y, mag, snr


def _png_links(page: str) -> set[str]:
    return set(re.findall(r'<img src="([^"]+\.png)"', page))


def test_classification_report_writes_everything(tmp_path):
    p, y, mag, snr = _data()
    paper = {"STAR": (1.0, 0.96, 0.70), "QSO_HIGH": (0.99, 0.93, 0.63)}
    out = tmp_path / "rep"
    extra = [("Notes", "<p>extra section</p>")]
    rep = report.classification_report(
        out, p, y, mag, snr=snr, title="toy <model>", extra_sections=extra, paper=paper
    )

    names = ("confusion", "reliability", "roc", "f1_vs_mag", "entropy_vs_snr")
    names += tuple(f"confusion_r{lo:g}-{hi:g}" for lo, hi in metrics.MAGNITUDE_BINS)
    assert set(rep["figures"]) == set(names)
    for key in ("report", "metrics_csv", "metrics_sliding_csv", "metrics_json"):
        assert rep[key].is_file() and rep[key].parent == out
    pngs = sorted(out.glob("*.png"))
    assert {f.stem for f in pngs} == set(names)
    assert all(f.stat().st_size > 5000 and f.read_bytes()[:4] == b"\x89PNG" for f in pngs)

    page = rep["report"].read_text()
    assert _png_links(page) == {f.name for f in pngs}  # relative links, every figure
    assert "toy &lt;model&gt;" in page and "<p>extra section</p>" in page
    assert "<style>" in page and page.count("<h2>") == 10

    table = pd.read_csv(rep["metrics_csv"])
    expected = metrics.evaluate(p, y, mag)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, rtol=1e-12)
    sliding = pd.read_csv(rep["metrics_sliding_csv"])
    pd.testing.assert_frame_equal(
        sliding, metrics.evaluate(p, y, mag, metrics.sliding_bins()), check_dtype=False
    )
    headline = json.loads(rep["metrics_json"].read_text())
    assert headline == pytest.approx(metrics.summary(p, y))
    assert rep["headline"] == headline


def test_report_without_snr_and_with_weights(tmp_path):
    p, y, mag, _ = _data(120, seed=1)
    w = np.random.default_rng(1).uniform(0.5, 2, len(y))
    rep = report.classification_report(tmp_path, p, y, mag, sample_weight=w)
    assert "entropy_vs_snr" not in rep["figures"]
    assert not (tmp_path / "entropy_vs_snr.png").exists()
    assert _png_links(rep["report"].read_text()) == {f.name for f in tmp_path.glob("*.png")}
    expected = metrics.evaluate(p, y, mag, sample_weight=w)
    pd.testing.assert_frame_equal(pd.read_csv(rep["metrics_csv"]), expected, check_dtype=False)


def test_write_html_report_sections(tmp_path):
    figs = tmp_path / "figs"
    png = report.plot_roc(*_data(80)[:2], figs / "roc.png")
    df = pd.DataFrame({"a": [1.23456, 2.0], "b": ["x", "y"]})
    out = report.write_html_report(
        tmp_path / "site",
        "T & T",
        [("table", df), ("figure", png), ("figure as str", str(png)), ("html", "<b>bold</b>")],
    )
    page = out.read_text()
    assert out == tmp_path / "site" / "report.html"
    assert "<title>T &amp; T</title>" in page
    assert "1.235" in page and "1.23456" not in page  # float_format="%.3f"
    assert page.count('<img src="../figs/roc.png"') == 2
    assert "<b>bold</b>" in page


def test_plots_handle_missing_class_and_overlay(tmp_path):
    p, y, mag, _ = _data(200, seed=2)
    y[y == 3] = 0  # QSO_HIGH absent everywhere
    tables = {
        "a": metrics.evaluate(p, y, mag, metrics.sliding_bins()),
        "b": metrics.evaluate(p[::-1], y, mag, metrics.sliding_bins()),
    }
    paths = [
        report.plot_reliability(p, y, tmp_path / "rel.png"),
        report.plot_roc(p, y, tmp_path / "roc.png"),
        report.plot_f1_vs_mag(tables, tmp_path / "f1.png", paper={"STAR": (1.0, 0.9, 0.7)}),
        report.plot_entropy_vs_snr(np.zeros(3), np.full(3, np.nan), y[:3], tmp_path / "e.png"),
    ]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000
    assert np.isnan(metrics.roc_auc(p, y).auc[3])  # so plot_roc really skipped a class
    assert tables["a"]["F1_QSO_HIGH"].isna().all()
