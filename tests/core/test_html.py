"""The one HTML report writer (:mod:`jpasbatch.core.html`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jpasbatch.core.html import write_html_report


def _png(path: Path) -> Path:
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def test_write_html_report_sections(tmp_path):
    figs = tmp_path / "figs"
    png = _png(figs / "roc.png")
    df = pd.DataFrame({"a": [1.23456, 2.0], "b": ["x", "y"]})
    out = write_html_report(
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


def test_wide_tables_scroll_rather_than_overflow(tmp_path):
    wide = pd.DataFrame(np.ones((2, 60)), columns=[f"COLUMN_NUMBER_{i}" for i in range(60)])
    page = write_html_report(tmp_path, "t", [("VAC against truth", wide)]).read_text()
    assert re.search(r"\.scroll\s*\{[^}]*overflow-x:\s*auto", page)
    assert re.search(r'<div class="scroll">\s*<table', page)
