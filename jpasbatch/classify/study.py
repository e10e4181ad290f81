"""The classifier study on the emulated survey (the tables of the closing note).

Trains, on one set of inputs, every model the comparisons need and evaluates
them on the same data:

* committee vs single member, ANN vs random forest, ANN1 vs ANN2 features,
  hybridisation on vs off: on the mocks' test split (weighted F1, macro F1, ECE);
* F1 per magnitude bin of the ANN1 committee beside miniJPAS QSO III's numbers;
* mocks-only vs target-only vs SSDA: on held-out observed objects (macro F1,
  QSO_HIGH F1), with a label budget from the spectroscopic cross-match.

Writes ``study.md`` (the tables) and ``report.html`` into ``out``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify.data import read_labelled
from jpasbatch.classify.evaluate import PAPER_F1, predict, report_model
from jpasbatch.classify.load import MODEL_CARDS, load_model
from jpasbatch.classify.ssda import labelled_observed
from jpasbatch.classify.train import TrainSpec, train
from jpasbatch.core.metrics import evaluate, summary


class StudySpec(BaseModel):
    """Inputs and budget of the study.

    Attributes
    ----------
    mocks
        The main mock catalogue (similarity errors, no hybrids).
    mocks_plain, mocks_hybrid
        A smaller pair made with the same seed, hybridisation off and on.
    catalogue, truth
        The ingested emulated survey and the emulator's truth folder.
    out
        Study folder.
    epochs, patience, batch_size
        Training budget of every committee.
    budget
        Labelled observed objects for target-only and SSDA.
    workers, ray
        Ray Train workers for the committees (``ray=False``: in process).
    """

    model_config = ConfigDict(extra="forbid")

    mocks: Path
    mocks_plain: Path
    mocks_hybrid: Path
    catalogue: Path
    truth: Path
    out: Path = Path("study")
    epochs: int = Field(40, ge=1)
    patience: int = Field(8, ge=1)
    batch_size: int = Field(512, ge=1)
    budget: int = Field(1000, ge=10)
    workers: int = Field(2, ge=1)
    ray: bool = True
    seed: int = 0


def run_study(spec: StudySpec) -> dict[str, pd.DataFrame]:
    """Train and evaluate everything; returns the study's tables."""
    from jpasbatch.core.html import write_html_report

    out = spec.out
    runs = out / "runs"
    common = spec.model_dump(include={"epochs", "patience", "batch_size", "workers", "ray", "seed"})

    def fit(name: str, inputs, **kw) -> Path:
        # a rerun keeps the models already trained (delete runs/NAME to retrain one)
        done = [runs / name / f for f in MODEL_CARDS]
        if any(p.exists() for p in done):
            return next(p for p in done if p.exists())
        return train(TrainSpec(train=inputs, out=runs, name=name, **(common | kw)))

    models = {
        "ann1": fit("ann1", [spec.mocks]),
        "ann2": fit("ann2", [spec.mocks], features="ann2"),
        "forest": fit("forest", [spec.mocks], model="forest"),
        "hybrid_off": fit("hybrid_off", [spec.mocks_plain]),
        # five hybrids per object: a fifth of the epochs gives the same optimiser steps
        # (and no early stop inside them)
        "hybrid_on": fit(
            "hybrid_on",
            [spec.mocks_hybrid],
            validation=[spec.mocks_plain],
            epochs=max(1, spec.epochs // 5),
            patience=max(1, spec.epochs // 5),
        ),
    }
    sets = labelled_observed(
        catalogue=spec.catalogue,
        truth=spec.truth,
        out=out / "observed",
        budget=spec.budget,
        seed=spec.seed,
    )
    # a label budget of ~1000 objects: small batches, or an epoch is a single step
    target = {"weighting": "balanced", "batch_size": 32, "patience": 2 * spec.patience,
              "epochs": 5 * spec.epochs}  # fmt: skip
    models["target_only"] = fit("target_only", [sets["adapt"]], **target)
    models["ssda"] = fit("ssda", [sets["adapt"]], init_from=models["ann1"], lr=3e-4, **target)

    mock_test = read_labelled([spec.mocks], ["test"])
    heldout = read_labelled([sets["heldout"]], ["test"])
    heldout_xmatch = read_labelled([sets["heldout_xmatch"]], ["test"])
    ann1 = load_model(models["ann1"])
    candidates = {
        "ANN1 committee (8)": ann1,
        "ANN1 single member": ann1.select_members([0]),
        "ANN2 committee (8)": load_model(models["ann2"]),
        "random forest (ANN1 features)": load_model(models["forest"]),
        "hybridisation off": load_model(models["hybrid_off"]),
        "hybridisation on": load_model(models["hybrid_on"]),
    }
    observed = {
        "mocks-only": ann1,
        "target-only": load_model(models["target_only"]),
        "SSDA": load_model(models["ssda"]),
    }
    tables = {}
    for protocol in ("balanced", "natural"):
        tables[f"mocks_{protocol}"] = _headline(candidates, mock_test, protocol)
        tables[f"observed_{protocol}"] = _headline(observed, heldout, protocol)
        # "natural" here: the cross-match's own class mix (spectroscopic targets)
        tables[f"xmatch_{protocol}"] = _headline(observed, heldout_xmatch, protocol)
    p, d, w = predict(ann1, mock_test, "balanced")
    tables["bins"] = _bins_vs_paper(evaluate(p, d.y, d.mag, sample_weight=w))
    reports = {
        "ann1_mocks_balanced": (mock_test, ann1, "balanced"),
        "ann1_mocks_natural": (mock_test, ann1, "natural"),
        "ssda_observed_natural": (heldout, observed["SSDA"], "natural"),
        "ssda_xmatch": (heldout_xmatch, observed["SSDA"], "natural"),
    }
    for name, (data, model, protocol) in reports.items():
        report_model(out / name, model, data, name, protocol)
    _write_markdown(out / "study.md", tables, spec)
    write_html_report(
        out,
        "jpasbatch classifier study (emulated survey)",
        [(title, tables[key]) for title, key in _SECTIONS]
        + [("Reports", "".join(f'<p><a href="{n}/report.html">{n}</a></p>' for n in reports))],
    )
    return tables


_SECTIONS = (
    ("Mock test split, balanced classes (the paper's protocol)", "mocks_balanced"),
    ("Mock test split, natural abundances (prior-corrected)", "mocks_natural"),
    (
        "Held-out cross-matched objects, their own class mix (the SSDA paper's protocol)",
        "xmatch_natural",
    ),
    ("Held-out cross-matched objects, balanced classes", "xmatch_balanced"),
    ("Held-out observed objects, balanced classes", "observed_balanced"),
    ("Held-out observed objects, natural abundances", "observed_natural"),
    ("ANN1 committee F1 per r bin (balanced) vs miniJPAS QSO III", "bins"),
)


def _headline(models: dict, data, protocol: str) -> pd.DataFrame:
    rows = []
    for name, model in models.items():
        p, d, w = predict(model, data, protocol)
        rows.append({"model": name, "n": len(d), **summary(p, d.y, w)})
    return pd.DataFrame(rows)


def _bins_vs_paper(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    fixed = table[table["bin"] != "all"].reset_index(drop=True)
    for i, r in fixed.iterrows():
        for c in CLASSES:
            rows.append(
                {
                    "bin": r["bin"],
                    "class": c,
                    "F1 (here)": r[f"F1_{c}"],
                    "F1 (paper)": PAPER_F1[c][i],
                }
            )
    return pd.DataFrame(rows).pivot(
        index="class", columns="bin", values=["F1 (here)", "F1 (paper)"]
    )


def _write_markdown(path: Path, tables: dict[str, pd.DataFrame], spec: StudySpec) -> None:
    lines = [
        "# Classifier study on the emulated survey",
        "",
        f"Inputs: mocks `{spec.mocks}`, hybrid pair `{spec.mocks_plain}` / `{spec.mocks_hybrid}`, "
        f"survey `{spec.catalogue}`; label budget {spec.budget}; epochs <= {spec.epochs}.",
        "",
    ]
    for title, key in _SECTIONS:
        lines += [f"## {title}", "", tables[key].to_markdown(floatfmt=".3f"), ""]
    path.write_text("\n".join(lines))
