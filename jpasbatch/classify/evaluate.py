"""Evaluate saved classifiers on labelled photometry: metrics, plots, one HTML report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from jpasbatch.catalog.schemas import BANDS
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.data import LabelledSet, read_labelled
from jpasbatch.classify.forest import ForestClassifier

#: Test F1 of ANN1 on mocks in r bins 17-20, 20-22.5, 22.5-23.6 (miniJPAS QSO III).
PAPER_F1 = {
    "QSO_HIGH": (0.99, 0.93, 0.63),
    "QSO_LOW": (0.97, 0.82, 0.61),
    "GALAXY": (0.94, 0.90, 0.81),
    "STAR": (1.0, 0.96, 0.70),
}
_R = BANDS.index("rSDSS")


def load_model(path: str | Path) -> Classifier | ForestClassifier:
    """A saved ANN committee (``model.pt``) or random forest (``forest.joblib``)."""
    path = Path(path)
    if path.is_dir():
        path = next((path / f for f in ("model.pt", "forest.joblib") if (path / f).exists()), path)
    if path.suffix == ".joblib":
        return ForestClassifier.load(path)
    return Classifier.load(path)


def predict(model, data: LabelledSet, **kwargs) -> tuple[np.ndarray, LabelledSet]:
    """Probabilities of the classifiable rows of ``data``, and those rows."""
    p, ok = model.predict_proba(data.flux, **kwargs)
    return p[ok], data.subset(ok)


def evaluate_models(
    models: dict[str, str | Path],
    test: Sequence[str | Path],
    out: str | Path,
    *,
    splits: Sequence[str] | None = ("test",),
    title: str = "jpasbatch classifier evaluation",
) -> pd.DataFrame:
    """Report every model on the labelled ``test`` rows into ``out/<name>/``.

    Returns the headline table (one row per model), also written to
    ``out/summary.csv`` and ``out/report.html`` with links to each model's report.
    """
    from jpasbatch.classify.report import classification_report, write_html_report

    out = Path(out)
    data = read_labelled(test, splits)
    rows = []
    for name, path in models.items():
        p, d = predict(load_model(path), data)
        with np.errstate(divide="ignore"):
            snr = 1.0 / np.abs(d.relerr[:, _R])
        rep = classification_report(
            out / name, p, d.y, d.mag, snr=snr, title=f"{title}: {name}", paper=PAPER_F1,
            sample_weight=d.abundance,
        )  # fmt: skip
        rows.append({"model": name, "n": len(d), **rep["headline"]})
    table = pd.DataFrame(rows)
    table.to_csv(out / "summary.csv", index=False)
    links = "".join(f'<li><a href="{n}/report.html">{n}</a></li>' for n in models)
    write_html_report(out, title, [("Models", table), ("Per-model reports", f"<ul>{links}</ul>")])
    return table
