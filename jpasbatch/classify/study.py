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

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from jpasbatch.catalog.schemas import BANDS, CLASSES
from jpasbatch.classify.data import read_labelled
from jpasbatch.classify.evaluate import PAPER_F1, load_model, predict
from jpasbatch.classify.metrics import evaluate, summary
from jpasbatch.classify.ssda import labelled_observed
from jpasbatch.classify.train import TrainSpec, train


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
    epochs: int = Field(15, ge=1)
    patience: int = Field(4, ge=1)
    batch_size: int = Field(1024, ge=1)
    budget: int = Field(1000, ge=10)
    workers: int = Field(2, ge=1)
    ray: bool = True
    seed: int = 0


def run_study(spec: StudySpec) -> dict[str, pd.DataFrame]:
    """Train and evaluate everything; returns the study's tables."""
    from jpasbatch.classify.report import classification_report, write_html_report

    out = spec.out
    runs = out / "runs"
    common = spec.model_dump(include={"epochs", "patience", "batch_size", "workers", "ray", "seed"})

    def fit(name: str, inputs, **kw) -> Path:
        # a rerun keeps the models already trained (delete runs/NAME to retrain one)
        done = [runs / name / f for f in ("model.pt", "forest.joblib")]
        if any(p.exists() for p in done):
            return next(p for p in done if p.exists())
        return train(TrainSpec(train=inputs, out=runs, name=name, **(common | kw)))

    models = {
        "ann1": fit("ann1", [spec.mocks]),
        "ann2": fit("ann2", [spec.mocks], features="ann2"),
        "forest": fit("forest", [spec.mocks], model="forest"),
        "hybrid_off": fit("hybrid_off", [spec.mocks_plain]),
        "hybrid_on": fit("hybrid_on", [spec.mocks_hybrid], validation=[spec.mocks_plain]),
    }
    sets = labelled_observed(
        catalogue=spec.catalogue,
        truth=spec.truth,
        out=out / "observed",
        budget=spec.budget,
        seed=spec.seed,
    )
    target = {"weighting": "balanced", "patience": max(spec.patience, 8), "epochs": 4 * spec.epochs}
    models["target_only"] = fit("target_only", [sets["adapt"]], **target)
    models["ssda"] = fit("ssda", [sets["adapt"]], init_from=models["ann1"], lr=3e-4, **target)

    mock_test = read_labelled([spec.mocks], ["test"])
    heldout = read_labelled([sets["heldout"]], ["test"])
    ann1 = load_model(models["ann1"])
    candidates = {
        "ANN1 committee (8)": ann1,
        "ANN1 committee, training priors": _without_prior(ann1),
        "ANN1 single member": ann1.select_members([0]),
        "ANN2 committee (8)": load_model(models["ann2"]),
        "random forest (ANN1 features)": load_model(models["forest"]),
        "hybridisation off": load_model(models["hybrid_off"]),
        "hybridisation on": load_model(models["hybrid_on"]),
    }
    tables = {"mocks": _headline(candidates, mock_test)}
    observed = {
        "mocks-only": ann1,
        "target-only": load_model(models["target_only"]),
        "SSDA": load_model(models["ssda"]),
    }
    tables["observed"] = _headline(observed, heldout)
    p, d = predict(ann1, mock_test)
    tables["bins"] = _bins_vs_paper(evaluate(p, d.y, d.mag, sample_weight=d.abundance))
    reports = {}
    for name, data, model in (
        ("ann1_mocks", mock_test, ann1),
        ("ssda_observed", heldout, observed["SSDA"]),
    ):
        p, d = predict(model, data)
        with np.errstate(divide="ignore"):
            snr = 1 / np.abs(d.relerr[:, BANDS.index("rSDSS")])
        reports[name] = classification_report(
            out / name, p, d.y, d.mag, snr=snr, title=name, paper=PAPER_F1,
            sample_weight=d.abundance,
        )  # fmt: skip
    _write_markdown(out / "study.md", tables, spec, sets)
    write_html_report(
        out,
        "jpasbatch classifier study (emulated survey)",
        [
            ("Mock test split: committee, forest, features, hybridisation", tables["mocks"]),
            ("Held-out observed objects: mocks-only vs target-only vs SSDA", tables["observed"]),
            ("ANN1 committee F1 per r bin vs miniJPAS QSO III", tables["bins"]),
            ("Reports", "".join(f'<p><a href="{n}/report.html">{n}</a></p>' for n in reports)),
        ],
    )
    return tables


def _without_prior(model):
    """The same model with probabilities under its (class-balanced) training priors."""
    other = model.select_members(list(range(model.model.members)))  # a copy
    other.prior = None
    return other


def _headline(models: dict, data) -> pd.DataFrame:
    rows = []
    for name, model in models.items():
        p, d = predict(model, data)
        rows.append({"model": name, "n": len(d), **summary(p, d.y, d.abundance)})
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


def _write_markdown(path: Path, tables: dict[str, pd.DataFrame], spec: StudySpec, sets) -> None:
    lines = [
        "# Classifier study on the emulated survey",
        "",
        f"Inputs: mocks `{spec.mocks}`, hybrid pair `{spec.mocks_plain}` / `{spec.mocks_hybrid}`, "
        f"survey `{spec.catalogue}`; label budget {spec.budget}; epochs <= {spec.epochs}.",
        "",
    ]
    for title, key in (
        ("Mock test split", "mocks"),
        ("Held-out observed objects", "observed"),
        ("F1 per r bin", "bins"),
    ):
        lines += [f"## {title}", "", tables[key].to_markdown(floatfmt=".3f"), ""]
    path.write_text("\n".join(lines))
