"""One colour per class in every figure of every report (jpasbatch.physics.plots.CLASS_COLOURS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify import report as classify_report
from jpasbatch.core import metrics
from jpasbatch.physics import plots


@pytest.fixture
def saved(monkeypatch):
    """Every Figure saved while the test runs (they are written as usual too)."""
    figures: list[Figure] = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def _class_line_colours(fig: Figure) -> dict[str, set[tuple]]:
    """Colour of every line or step whose label is (or starts with) a class name."""
    names = sorted(plots.CLASS_COLOURS, key=len, reverse=True)  # QSO_LOW before QSO
    found: dict[str, set[tuple]] = {}
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.containers]:
            label = str(artist.get_label())
            name = next((n for n in names if label == n or label.startswith(f"{n} ")), None)
            if name is None:
                continue
            line = artist if hasattr(artist, "get_color") else artist.lines[0]
            found.setdefault(name, set()).add(to_rgba(line.get_color()))
    return found


def _assert_shared(found: dict[str, set[tuple]], expected: set[str]) -> None:
    assert set(found) == expected
    for name, colours in found.items():
        assert colours == {to_rgba(plots.CLASS_COLOURS[name])}, name


def test_class_colours_are_distinct_and_cover_every_class_set():
    from jpasbatch.foundation.evaluate import OJALA_CLASSES
    from jpasbatch.spectra.emulate import CLASSES as SPECTRA_CLASSES

    assert set(CLASSES) | set(OJALA_CLASSES) | set(SPECTRA_CLASSES) <= set(plots.CLASS_COLOURS)
    rgba = [to_rgba(c) for c in plots.CLASS_COLOURS.values()]
    assert len(set(rgba)) == len(rgba)
    assert plots.class_colour("GALAXY") == plots.CLASS_COLOURS["GALAXY"]
    assert plots.class_colour("7", 0) not in plots.CLASS_COLOURS.values()
    with pytest.raises(TypeError):
        plots.CLASS_COLOURS["STAR"] = "black"  # read-only: nobody can change one report's colours


def _classifier_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p, y, rng.uniform(17, 23.6, n), 10 ** rng.uniform(0, 2.5, n)


def test_classification_report_figures_share_class_colours(tmp_path, saved):
    p, y, mag, snr = _classifier_data()
    table = metrics.evaluate(p, y, mag, metrics.sliding_bins())
    classify_report.plot_f1_vs_mag({"a": table, "b": table}, tmp_path / "f1.png",
                                   paper={"STAR": (1.0, 0.9, 0.7)})  # fmt: skip
    classify_report.plot_roc(p, y, tmp_path / "roc.png")
    classify_report.plot_entropy_vs_snr(metrics.entropy(p), snr, y, tmp_path / "e.png")
    assert len(saved) == 3
    for fig in saved:
        _assert_shared(_class_line_colours(fig), set(CLASSES))


def test_reliability_panels_use_class_colours(tmp_path, saved):
    p, y, _, _ = _classifier_data()
    classify_report.plot_reliability(p, y, tmp_path / "rel.png")
    (fig,) = saved
    for ax, name in zip(fig.axes, CLASSES, strict=True):
        points = [line for line in ax.lines if line.get_marker() == "o"]
        assert [to_rgba(line.get_color()) for line in points] == [
            to_rgba(plots.CLASS_COLOURS[name])
        ]


def test_job_report_counts_use_class_colours(tmp_path, saved):
    from jpasbatch.pipeline.report import _plot_counts

    lo = np.arange(17.0, 24.0)
    counts = pd.DataFrame({"MAG_R_LO": lo, "MAG_R_HI": lo + 1})
    for c in CLASSES:
        counts[f"N_{c}_EXPECTED"] = np.linspace(1, 100, len(lo))
    _plot_counts(counts, tmp_path)
    (fig,) = saved
    _assert_shared(_class_line_colours(fig), set(CLASSES))
    assert fig.axes[0].get_xlabel() == plots.OBSERVED_R


def test_spectra_report_figures_share_class_colours(tmp_path, saved):
    from jpasbatch.spectra import report as spectra_report
    from jpasbatch.spectra.emulate import CLASSES as SPECTRA_CLASSES

    rng = np.random.default_rng(1)
    n = 300
    true = rng.choice(SPECTRA_CLASSES, n)
    z = rng.uniform(0.01, 3, n)
    table = pd.DataFrame({"CLASS_TRUE": true, "CLASS": true, "Z_TRUE": z,
                          "SNR": 10 ** rng.uniform(-0.5, 1.5, n)})  # fmt: skip
    for cls in ("GALAXY", "QSO"):
        table[f"Z_{cls}"] = z + rng.normal(0, 0.01, n)
        table[f"Z_{cls}_ERR"] = np.full(n, 0.01)
    spectra_report.plot_calibration(table, tmp_path / "cal.png")
    spectra_report.plot_vs_snr(table, tmp_path / "snr.png")
    cal, snr = saved
    _assert_shared(_class_line_colours(cal), {"GALAXY", "QSO"})
    _assert_shared(_class_line_colours(snr), set(SPECTRA_CLASSES))


def test_foundation_report_uses_class_colours():
    pytest.importorskip("torch")
    from jpasbatch.foundation import report as foundation_report
    from jpasbatch.foundation.evaluate import OJALA_CLASSES

    t = pd.DataFrame({"i": np.arange(18.0, 23.0), "weighted_f1": 0.8})
    for key in ("purity", "completeness", "f1"):
        for name in OJALA_CLASSES:
            t[f"{key}_{name}"] = 0.5
    per_ds = {"all": {"class3": t}}
    results = {"m": {"test_real": per_ds, "test_synth": per_ds}}
    fig = foundation_report._plot_classification(results, ["m"])
    _assert_shared(_class_line_colours(fig), set(OJALA_CLASSES))


def test_foundation_tables_scroll_rather_than_overflow():
    pytest.importorskip("torch")
    import re

    from jpasbatch.foundation import report as foundation_report

    wide = pd.DataFrame(np.ones((2, 60)), columns=[f"COLUMN_NUMBER_{i}" for i in range(60)])
    fragment = foundation_report._table_html(wide)
    assert re.fullmatch(r'<div class="scroll">\s*<table.*</table>\s*</div>', fragment, re.S)
    page = foundation_report._html({}, wide, {}, {}, {}, {}, {})
    assert re.search(r"\.scroll\{overflow-x:auto", page)
    assert page.count('<div class="scroll">') == 3  # OJALA, headline, parameters
