"""The classification report: files, figures, HTML links and tables."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify import report
from jpasbatch.core import metrics

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


@pytest.fixture
def saved(monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def test_f1_vs_mag_bands_and_gaps_for_empty_bins(tmp_path, saved):
    from matplotlib.collections import PolyCollection

    from jpasbatch.physics.plots import OBSERVED_R, TRUE_R

    p, y, mag, _ = _data(600, seed=3)
    mag[(mag > 20.5) & (mag < 21.8)] = 17.5  # a hole: several sliding bins are empty
    table = metrics.evaluate(p, y, mag, metrics.sliding_bins())
    rows = table[table["bin"] != "all"]
    empty = (rows["n"] == 0).to_numpy()
    assert empty.any() and not empty.all()
    report.plot_f1_vs_mag({"m": table}, tmp_path / "f1.png")
    (fig,) = saved
    ax = fig.axes[0]
    assert ax.get_xlabel() == OBSERVED_R
    lines = {line.get_label(): line for line in ax.lines}
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(CLASSES)
    for name, band in zip(CLASSES, bands, strict=True):
        f1 = np.asarray(lines[name].get_ydata(), float)
        assert np.isnan(f1[empty]).all()  # an empty bin is a gap, not a 0
        np.testing.assert_array_equal(f1[~empty], rows[f"F1_{name}"].to_numpy(float)[~empty])
        lo = rows[f"F1_LO_{name}"].to_numpy(float)
        hi = rows[f"F1_HI_{name}"].to_numpy(float)
        assert np.all(lo[~empty] <= f1[~empty]) and np.all(f1[~empty] <= hi[~empty])
        assert np.all(hi[~empty] - lo[~empty] > 0.01)
        # the band spans lo..hi of the non-empty bins, and has no vertex in the hole
        vertices = np.concatenate([path.vertices for path in band.get_paths()])
        assert vertices[:, 1].min() == pytest.approx(np.nanmin(lo))
        assert vertices[:, 1].max() == pytest.approx(np.nanmax(hi))
        x = 0.5 * (rows["lo"] + rows["hi"]).to_numpy(float)
        inside_hole = (vertices[:, 0] > x[empty].min()) & (vertices[:, 0] < x[empty].max())
        assert not inside_hole.any()
    saved.clear()
    report.plot_f1_vs_mag({"m": table}, tmp_path / "f1t.png", mag_label=TRUE_R)
    assert saved[0].axes[0].get_xlabel() == TRUE_R


def test_report_names_its_r(tmp_path, saved):
    from jpasbatch.physics.plots import TRUE_R

    p, y, mag, _ = _data(200, seed=4)
    rep = report.classification_report(tmp_path / "obs", p, y, mag)
    page = rep["report"].read_text()
    assert "Metrics in observed r bins" in page and "F1 against observed r" in page
    rep = report.classification_report(tmp_path / "true", p, y, mag, mag_label=TRUE_R)
    page = rep["report"].read_text()
    assert "Metrics in true r bins" in page and "observed r" not in page
    titles = [fig.axes[0].get_title() for fig in saved]
    assert any("17 <= true r < 20" in t for t in titles)
    assert any(ax.get_xlabel() == TRUE_R for fig in saved for ax in fig.axes)
