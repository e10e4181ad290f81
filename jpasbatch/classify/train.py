"""The training launcher: a typed spec in, a saved classifier out.

The ANN committee trains through Ray Train's ``TorchTrainer`` (``ray=True``,
the default; any number of CPU or GPU workers, a checkpoint per epoch, retries
from ``FailureConfig``, and a rerun with the same ``out`` / ``name`` resumes
from the last checkpoint), or through the same loop in this process
(``ray=False``: machines without Ray). The random forest trains in process.
Afterwards the best epoch's weights are calibrated by temperature scaling on
the validation split and saved to ``out/name/model.json`` + ``model.safetensors``
(``forest.json`` + ``forest.skops``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pydantic import BaseModel, ConfigDict, Field

from jpasbatch.catalog.schemas import BANDS, CLASSES
from jpasbatch.classify.calibrate import fit_temperature, prior_ratio
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.data import parquet_files, read_labelled, training_weights
from jpasbatch.classify.features import REFERENCE, FeatureScaler
from jpasbatch.classify.forest import ForestClassifier
from jpasbatch.classify.loop import train_loop_per_worker
from jpasbatch.classify.model import CommitteeMLP
from jpasbatch.core.metrics import expected_calibration_error
from jpasbatch.distribute.ray import fit


class TrainSpec(BaseModel):
    """What to train, on what, and where.

    Attributes
    ----------
    train
        ``MOCK``-schema Parquet files or folders; rows with ``SPLIT == train``
        train, ``validation`` rows stop early and calibrate.
    validation
        Other inputs for the validation split (default: ``train``'s).
    out, name
        Run folder ``out/name``: Ray's checkpoints, ``model.json`` +
        ``model.safetensors``, ``history.csv``.
    model
        ``ann`` (the committee) or ``forest`` (the baseline).
    features
        ``ann1`` (relative fluxes) or ``ann2`` (colours + scaled r).
    missing
        A missing band's feature: ``interpolate`` (from its neighbours in
        wavelength), ``mean`` (the training mean) or ``zero`` (the paper's 0
        relative flux / colour); see :mod:`jpasbatch.classify.features`.
    members, hidden, layers, dropout, max_norm
        The committee's architecture.
    lr, batch_size, epochs, patience
        Adam learning rate, per-worker batch, epoch limit and early-stopping
        patience (epochs without a better validation weighted F1).
    weighting
        Training sample weights: the mocks' ``WEIGHT`` column, ``balanced``
        (1 / class count) or ``none``.
    init_from
        A saved ``model.json`` to fine-tune (its features and architecture are kept).
    workers, use_gpu, max_failures, ray, ray_address
        Ray Train resources: workers (one CPU each, or one GPU each with
        ``use_gpu``), retries of a failed run, whether to use Ray at all, and
        the address of an existing cluster (default: a local one).
    calibrate
        Fit a temperature on the validation split.
    prior_correction
        Move the probabilities from the weighted training priors to the class
        abundances of the validation split (see :mod:`jpasbatch.classify.calibrate`).
    n_estimators
        Trees of the random forest.
    """

    model_config = ConfigDict(extra="forbid")

    train: list[Path]
    validation: list[Path] | None = None
    out: Path = Path("runs")
    name: str = "classifier"
    model: Literal["ann", "forest"] = "ann"
    features: Literal["ann1", "ann2"] = "ann1"
    missing: Literal["zero", "mean", "interpolate"] = "interpolate"
    members: int = Field(8, ge=1)
    hidden: int = Field(200, ge=1)
    layers: int = Field(8, ge=1)
    dropout: float = Field(0.15, ge=0, lt=1)
    max_norm: float = Field(2.0, gt=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(512, ge=1)
    epochs: int = Field(30, ge=1)
    patience: int = Field(5, ge=1)
    seed: int = 0
    weighting: Literal["column", "balanced", "none"] = "column"
    init_from: Path | None = None
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    max_failures: int = Field(1, ge=-1)
    ray: bool = True
    ray_address: str | None = None
    calibrate: bool = True
    prior_correction: bool = True
    n_estimators: int = Field(200, ge=1)

    @property
    def run_dir(self) -> Path:
        return self.out.resolve() / self.name


def train(spec: TrainSpec) -> Path:
    """Train as ``spec`` says; returns the saved model's path."""
    run = spec.run_dir
    run.mkdir(parents=True, exist_ok=True)
    (run / "spec.json").write_text(spec.model_dump_json(indent=2))
    val = read_labelled(spec.validation or spec.train, ["validation"])
    r_flux, flux_sample, y_train, w_column = _training_columns(spec.train)
    prior = None
    if spec.prior_correction:
        w_train = training_weights(y_train, w_column, spec.weighting)
        prior = prior_ratio(y_train, w_train, val.y, val.abundance).tolist()
    if spec.model == "forest":
        return _train_forest(spec, prior)
    if spec.init_from is not None:
        base = Classifier.load(spec.init_from)
        scaler, arch = (
            base.scaler,
            {k: v for k, v in base.model.hparams.items() if k not in ("n_in", "n_out")},
        )
    else:
        scaler = FeatureScaler.fit(flux_sample, spec.features, r_flux=r_flux, missing=spec.missing)
        arch = {k: getattr(spec, k) for k in ("members", "hidden", "layers", "dropout", "max_norm")}
    config = {
        "train_paths": [str(p.resolve()) for p in spec.train],
        "val_paths": [str(p.resolve()) for p in spec.validation] if spec.validation else None,
        "scaler": scaler.to_dict(),
        "model": arch,
        "init_from": str(spec.init_from.resolve()) if spec.init_from else None,
        "prior": prior,
        **spec.model_dump(include={"lr", "batch_size", "epochs", "patience", "seed", "weighting"}),
    }
    state = fit(
        train_loop_per_worker,
        config,
        run_dir=spec.run_dir,
        **spec.model_dump(include={"ray", "workers", "use_gpu", "max_failures", "ray_address"}),
    )
    model = CommitteeMLP(scaler.n_features, seed=spec.seed, **arch)
    model.load_state_dict(state["best_model"])
    clf = Classifier(model, scaler, prior=prior)
    meta = {
        "spec": json.loads(spec.model_dump_json()),
        "best_epoch": state["best_epoch"],
        "best_val_weighted_f1": state["best_f1"],
        "epochs_run": state["epoch"],
    }
    if spec.calibrate:
        meta |= _calibrate(clf, val)
    clf.meta = meta
    pd.DataFrame(state["history"]).to_csv(run / "history.csv", index=False)
    _plot_history(state["history"], run / "history.png")
    return clf.save(run / "model.json")


def _training_columns(
    paths: list[Path], sample: int = 200_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What the driver needs of the training split: scaler and class-prior inputs.

    Returns the rSDSS fluxes, classes and weights of every training row,
    and the fluxes (n, 60) of an evenly strided sample of at most ``sample``
    rows for the feature standardisation. Fitted once here, the scaler and
    priors are the same on every worker; the sample keeps the driver's memory
    bounded whatever the size of the training set.
    """
    dataset = ds.dataset(parquet_files(paths), format="parquet")
    is_train = pc.field("SPLIT") == "train"
    flux_cols = [f"FLUX_{b}" for b in BANDS]
    table = dataset.to_table(columns=[flux_cols[REFERENCE], "CLASS", "WEIGHT"], filter=is_train)
    stride = max(1, -(-table.num_rows // sample))
    parts, seen = [], 0
    for batch in dataset.to_batches(columns=flux_cols, filter=is_train):
        first = (-seen) % stride  # keep global rows 0, stride, 2 * stride, ...
        parts.append(batch.take(np.arange(first, batch.num_rows, stride)))
        seen += batch.num_rows
    flux = np.column_stack(
        [
            np.concatenate([p.column(j).to_numpy(zero_copy_only=False) for p in parts])
            for j in range(len(BANDS))
        ]
    ).astype(np.float64)
    r_flux = table.column(0).to_numpy(zero_copy_only=False).astype(np.float64)
    classes = table["CLASS"].to_numpy(zero_copy_only=False)
    y = np.array([CLASSES.index(c) for c in classes], dtype=np.int64)
    return r_flux, flux, y, table["WEIGHT"].to_numpy(zero_copy_only=False)


def _calibrate(clf, val) -> dict:
    """Fit the temperature on the validation split; ECE before and after."""
    p, ok = clf.predict_proba(val.flux, calibrated=False)
    y, w = val.y[ok], val.abundance[ok]
    before = expected_calibration_error(p[ok], y, sample_weight=w)
    clf.temperature = fit_temperature(p[ok], y, w)
    p_cal, _ = clf.predict_proba(val.flux)
    after = expected_calibration_error(p_cal[ok], y, sample_weight=w)
    return {"temperature": clf.temperature, "val_ece_before": before, "val_ece_after": after}


def _train_forest(spec: TrainSpec, prior: list[float] | None) -> Path:
    tr = read_labelled(spec.train, ["train"])
    scaler = FeatureScaler.fit(tr.flux, spec.features)
    w = training_weights(tr.y, tr.weight, spec.weighting)
    forest = ForestClassifier.fit(
        tr.flux, tr.y, w, scaler, n_estimators=spec.n_estimators, seed=spec.seed
    )
    forest.prior = prior
    forest.meta = {"spec": json.loads(spec.model_dump_json())}
    return forest.save(spec.run_dir / "forest.json")


def _plot_history(history: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    h = pd.DataFrame(history)
    fig = Figure(figsize=(8, 3))
    a, b = fig.subplots(1, 2)
    a.plot(h["epoch"], h["loss"], "o-")
    a.set(xlabel="epoch", ylabel="training loss")
    b.plot(h["epoch"], h["val_weighted_f1"], "o-")
    b.set(xlabel="epoch", ylabel="validation weighted F1")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
