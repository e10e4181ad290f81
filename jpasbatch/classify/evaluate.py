"""Evaluate saved classifiers on labelled photometry: metrics, plots, one HTML report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from jpasbatch.catalog.schemas import BANDS
from jpasbatch.classify.data import LabelledSet, Protocol, read_labelled
from jpasbatch.classify.load import load_model

#: Test F1 of ANN1 on mocks in r bins 17-20, 20-22.5, 22.5-23.6 (miniJPAS QSO III).
PAPER_F1 = {
    "QSO_HIGH": (0.99, 0.93, 0.63),
    "QSO_LOW": (0.97, 0.82, 0.61),
    "GALAXY": (0.94, 0.90, 0.81),
    "STAR": (1.0, 0.96, 0.70),
}
_R = BANDS.index("rSDSS")


def predict(
    model, data: LabelledSet, protocol: Protocol = "natural"
) -> tuple[np.ndarray, LabelledSet, np.ndarray]:
    """Probabilities of the classifiable rows of ``data``, those rows, and their weights.

    ``natural``: prior-corrected probabilities, abundance weights. ``balanced``
    (the paper's protocol): probabilities under the training priors (a third
    per STAR / GALAXY / QSO for the mocks' weights), test rows weighted to a
    third per STAR / GALAXY / QSO.
    """
    p, ok = model.predict_proba(data.flux, natural=protocol == "natural")
    d = data.subset(ok)
    return p[ok], d, d.protocol_weights(protocol)


def evaluate_models(
    models: dict[str, str | Path],
    test: Sequence[str | Path],
    out: str | Path,
    *,
    splits: Sequence[str] | None = ("test",),
    title: str = "jpasbatch classifier evaluation",
    protocol: Protocol = "natural",
) -> pd.DataFrame:
    """Report every model on the labelled ``test`` rows into ``out/<name>/``.

    ``protocol``: ``natural`` (sky abundances) or ``balanced`` (the paper's
    class-balanced test sets), see :func:`predict`.

    Returns the headline table (one row per model), also written to
    ``out/summary.csv`` and ``out/report.html`` with links to each model's report.
    """
    from jpasbatch.core.html import write_html_report

    out = Path(out)
    data = read_labelled(test, splits)
    rows = []
    for name, path in models.items():
        rep = report_model(out / name, load_model(path), data, f"{title}: {name}", protocol)
        n = int(rep["table"]["n"].iloc[-1])  # the "all" row: classifiable objects
        rows.append({"model": name, "n": n, **rep["headline"]})
    table = pd.DataFrame(rows)
    table.insert(1, "protocol", protocol)
    table.to_csv(out / "summary.csv", index=False)
    links = "".join(f'<li><a href="{n}/report.html">{n}</a></li>' for n in models)
    write_html_report(out, title, [("Models", table), ("Per-model reports", f"<ul>{links}</ul>")])
    return table


def report_model(out: Path, model, data: LabelledSet, title: str, protocol: Protocol) -> dict:
    """The evaluation report of one model on one labelled set (``classification_report``)."""
    from jpasbatch.classify.report import classification_report
    from jpasbatch.physics.plots import TRUE_R

    p, d, w = predict(model, data, protocol)
    with np.errstate(divide="ignore"):
        snr = 1.0 / np.abs(d.relerr[:, _R])
    title = f"{title} ({protocol} class abundances)"
    # labelled sets (mocks, Test-Real / Test-Synth) carry the simulation's true r
    return classification_report(
        out, p, d.y, d.mag, snr=snr, title=title, paper=PAPER_F1, sample_weight=w, mag_label=TRUE_R
    )
