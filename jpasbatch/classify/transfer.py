"""Leave-one-family-out validation: how a recipe does on a spectral family it never saw.

A real object belongs to none of the template sets a model trains on. The
project's proxy for that is to hold one spectral family out
(:mod:`jpasbatch.sim.spectral_families`): for each family F, train on mocks of
every other family and test on F's objects (the other classes' test rows come
from all their families). A recipe is better when its *worst* held-out family is
better.

Three models are scored on every held-out set:

* ``legacy``: the old recipe, one template set per class (the emulator's
  ``simulated`` world: Pickles, kcorrect, SDSS QSO eigenspectra), not randomised;
* ``all``: every family, randomised (it has seen F: the in-distribution ceiling);
* ``lofo``: every family but F, randomised (the transfer figure).

Metrics use the paper's balanced protocol (a third of the weight per STAR /
GALAXY / QSO), so the held-out class counts as much as the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify.data import from_table
from jpasbatch.classify.evaluate import predict
from jpasbatch.classify.load import load_model
from jpasbatch.classify.train import TrainSpec, train
from jpasbatch.core import metrics
from jpasbatch.core.provenance import provenance
from jpasbatch.mocks.pipeline import MocksConfig, make_mocks
from jpasbatch.sim.spectral_families import FAMILIES, class_of

#: r bins of the per-magnitude completeness of the held-out family.
R_BINS = ((14.0, 21.0), (21.0, 22.5), (22.5, 24.0))


class TransferSpec(BaseModel):
    """A leave-one-family-out study.

    Attributes
    ----------
    out
        Study folder: ``mocks_all/``, ``mocks_legacy/``, ``runs/``, ``report.md``,
        ``transfer.json``.
    families
        The families (default: all of them).
    n_objects, qso_boost, seed, zero_point_mag, psf_scatter_mag
        The mocks (depth errors), as :class:`MocksConfig`.
    members, hidden, layers, epochs, patience, batch_size
        The committees (smaller than production: the study trains one per family).
    ray, workers
        Train under Ray Train (``workers`` CPUs) or in this process.
    """

    model_config = ConfigDict(extra="forbid")

    out: Path
    families: list[str] = Field(default_factory=lambda: list(FAMILIES))
    n_objects: int = Field(40_000, gt=0)
    qso_boost: float = Field(10.0, ge=1)
    seed: int = 0
    zero_point_mag: float = 0.02
    psf_scatter_mag: float = 0.03
    members: int = Field(4, ge=1)
    hidden: int = Field(200, ge=1)
    layers: int = Field(8, ge=1)
    epochs: int = Field(15, ge=1)
    patience: int = Field(4, ge=1)
    batch_size: int = Field(256, ge=1)
    ray: bool = False
    workers: int = Field(2, ge=1)
    fast: bool = False


def _mocks(spec: TransferSpec, families: list[str] | None, client) -> Path:
    config = MocksConfig(
        n_objects=spec.n_objects,
        seed=spec.seed,
        error_model="depth",
        qso_boost=spec.qso_boost,
        partition_rows=min(spec.n_objects, 10_000),
        families=families,
        zero_point_mag=spec.zero_point_mag if families else 0.0,
        psf_scatter_mag=spec.psf_scatter_mag if families else 0.0,
        fast=spec.fast,
    )
    out = spec.out / ("mocks_all" if families else "mocks_legacy")
    make_mocks(out, config, client=client)
    return out


def _train(spec: TransferSpec, data: Path, name: str) -> Path:
    run = spec.out / "runs" / name
    if (run / "model.json").exists():  # resume: trained models stay
        return run / "model.json"
    train_spec = TrainSpec(
        train=[data],
        out=spec.out / "runs",
        name=name,
        seed=spec.seed,
        ray=spec.ray,
        workers=spec.workers,
        **spec.model_dump(
            include={"members", "hidden", "layers", "epochs", "patience", "batch_size"}
        ),
    )
    return train(train_spec)


def _without(mocks: Path, family: str, out: Path) -> Path:
    """The train and validation rows of ``mocks`` not from ``family``, as one Parquet file.

    The training rows' weights are rescaled so that each of STAR / GALAXY / QSO
    keeps its share of the total (a third each): without this, holding out one of
    two galaxy families would halve the galaxies' weight and the model's galaxy
    prior with it, and the study would measure the prior, not the transfer.
    """
    path = out / f"without_{family}.parquet"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        rows = ds.dataset(mocks, format="parquet").to_table(filter=pc.field("SPLIT") != "test")
        cls = class_of(rows["CLASS"].to_numpy(zero_copy_only=False))
        train = rows["SPLIT"].to_numpy(zero_copy_only=False) == "train"
        weight = rows["WEIGHT"].to_numpy().copy()
        full_w = pd.Series(weight[train]).groupby(cls[train]).sum()
        keep = rows["FAMILY"].to_numpy(zero_copy_only=False) != family
        table = rows.filter(pa.array(keep))
        cls, train, weight = cls[keep], train[keep], weight[keep]
        for c in np.unique(cls[train]):
            sel = train & (cls == c)
            weight[sel] *= full_w[c] / weight[sel].sum()
        table = table.set_column(table.schema.get_field_index("WEIGHT"), "WEIGHT", pa.array(weight))
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
    return path


def _scores(model, table, held_class: str) -> dict:
    """Balanced-protocol F1 per class, weighted F1, and the held-out class's recall per r bin."""
    data = from_table(table)
    probs, d, w = predict(model, data, "balanced")
    pred = probs.argmax(1)
    cm = metrics.confusion_matrix(d.y, pred, len(CLASSES), w)
    f1 = metrics.f1_scores(cm)
    held = class_of(np.asarray(CLASSES)[d.y]) == held_class
    pred_merged = class_of(np.asarray(CLASSES)[pred])
    hit = pred_merged == held_class
    if held_class == "QSO":  # a QSO in the wrong redshift half is still found as a QSO
        hit = np.char.startswith(pred_merged.astype(str), "QSO")
    recall_r = {}
    for lo, hi in R_BINS:
        sel = held & (d.mag >= lo) & (d.mag < hi)
        recall_r[f"{lo:g}-{hi:g}"] = float(hit[sel].mean()) if sel.any() else float("nan")
    return {
        "weighted_f1": metrics.weighted_f1(cm),
        "f1": dict(zip(CLASSES, map(float, f1), strict=True)),
        "held_class_recall": float(hit[held].mean()),
        "held_class_recall_by_r": recall_r,
        "n_held": int(held.sum()),
    }


def held_out(families: list[str]) -> list[str]:
    """The families that can be held out: those whose class has another family to train on."""
    per_class = pd.Series([FAMILIES[f].cls for f in families]).value_counts()
    return [f for f in families if per_class[FAMILIES[f].cls] > 1]


def run_transfer(spec: TransferSpec, client=None) -> dict:
    """Run the study (resumable: finished mocks and models are kept); returns the results.

    Writes ``transfer.json`` and ``report.md`` into ``spec.out``.
    """
    spec.out.mkdir(parents=True, exist_ok=True)
    mocks_all = _mocks(spec, spec.families, client)
    mocks_legacy = _mocks(spec, None, client)
    models = {
        "legacy": load_model(_train(spec, mocks_legacy, "legacy")),
        "all": load_model(_train(spec, mocks_all, "all")),
    }
    test = ds.dataset(mocks_all, format="parquet").to_table(filter=pc.field("SPLIT") == "test")
    family = test["FAMILY"].to_numpy(zero_copy_only=False).astype(str)
    cls = class_of(test["CLASS"].to_numpy(zero_copy_only=False))
    results: dict[str, dict] = {}
    for name in held_out(spec.families):
        held_class = FAMILIES[name].cls
        data = _without(mocks_all, name, spec.out / "data")
        lofo = load_model(_train(spec, data, f"lofo_{name}"))
        rows = np.flatnonzero((family == name) | (cls != held_class))
        table = test.take(rows)
        results[name] = {"class": held_class} | {
            recipe: _scores(model, table, held_class)
            for recipe, model in (*models.items(), ("lofo", lofo))
        }
    summary = {}
    for recipe in ("legacy", "all", "lofo"):
        recall = {f: r[recipe]["held_class_recall"] for f, r in results.items()}
        wf1 = [r[recipe]["weighted_f1"] for r in results.values()]
        worst = min(recall, key=recall.get)
        summary[recipe] = {
            "worst_family": worst,
            "worst_recall": recall[worst],
            "mean_weighted_f1": float(np.mean(wf1)),
        }
    out = {
        "families": results,
        "summary": summary,
        "provenance": provenance(parameters=json.loads(spec.model_dump_json())),
    }
    (spec.out / "transfer.json").write_text(json.dumps(out, indent=2))
    (spec.out / "report.md").write_text(report(out))
    return out


def report(result: dict) -> str:
    """The study as Markdown: one matrix per recipe, the worst held-out family in bold."""
    fams = result["families"]
    lines = [
        "# Leave-one-family-out transfer",
        "",
        "Each row: the test objects of one held-out spectral family (its class only; the "
        "other classes' test rows from every family). `lofo` never saw that family; `all` "
        "saw every family; `legacy` is the old single-template-set recipe. Balanced "
        "protocol (a third of the weight per STAR / GALAXY / QSO). *Recall* is the "
        "held-out family's objects found in their class (QSO: either QSO class).",
        "",
    ]
    for recipe in ("lofo", "all", "legacy"):
        worst = result["summary"][recipe]["worst_family"]
        lines += [
            f"## {recipe}",
            "",
            "| held-out family | class | weighted F1 | F1 STAR | F1 GALAXY | F1 QSO_LOW "
            "| F1 QSO_HIGH | recall | recall r<21 | recall 21-22.5 | recall >22.5 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in fams.items():
            s = r[recipe]
            cells = [
                f"{s['weighted_f1']:.3f}",
                *(f"{s['f1'][c]:.3f}" for c in CLASSES),
                f"{s['held_class_recall']:.3f}",
                *(f"{v:.3f}" for v in s["held_class_recall_by_r"].values()),
            ]
            label = f"**{name}** (worst)" if name == worst else name
            lines.append(f"| {label} | {r['class']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Summary",
        "",
        "| recipe | worst held-out family | its recall | mean weighted F1 |",
        "|---|---|---|---|",
    ]
    for recipe, s in result["summary"].items():
        lines.append(
            f"| {recipe} | {s['worst_family']} | {s['worst_recall']:.3f} "
            f"| {s['mean_weighted_f1']:.3f} |"
        )
    return "\n".join(lines) + "\n"
