"""The spectral-model launcher: a typed spec in, a model folder out.

Trains, one Ray Train run after another (or in this process with
``ray=False``), GaSNet-II's classifier, one 10-member redshift ensemble per
extragalactic class, and FNet for QSOs, on a prepared-spectra folder with
labels (emulated spectra, or prepared survey spectra with ``CLASS``, ``Z`` and
``SPLIT``). Every run checkpoints each epoch under ``out/name/<part>``; rerun
the same spec after an interruption and finished parts are loaded, the
interrupted one resumes from its last checkpoint.

The model folder ``out/name`` gets ``model.safetensors`` (every network's
weights, as ``<part>.<parameter>``) and ``model.json`` (its card: each part's
task and hyper-parameters, the classes, the grid, the regressors' validation
MAE for the robust flag; see :mod:`jpasbatch.core.modelio`), ``meta.json``, and
``history_<part>.csv`` / ``history.png``. A finished part's final state is
kept as ``<part>/final.safetensors`` + ``final.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from jpasbatch.core import modelio
from jpasbatch.distribute.ray import fit
from jpasbatch.spectra.emulate import CLASSES
from jpasbatch.spectra.loop import train_loop_per_worker
from jpasbatch.spectra.store import SpectraStore

log = logging.getLogger(__name__)

#: The model folder's card (the weights are ``model.safetensors`` beside it).
MODEL_FILE = "model.json"
#: The model card's ``kind``.
KIND = "jpasbatch.spectra.SpectraModel"
#: A finished part's final state (its card), in the part's run folder.
FINAL_FILE = "final.json"


class SpectraTrainSpec(BaseModel):
    """What to train, on what, and where.

    Attributes
    ----------
    data
        A prepared-spectra folder with ``CLASS`` (STAR / GALAXY / QSO), ``Z``
        and ``SPLIT`` (train / validation / test) in its index.
    out, name
        The model folder ``out/name`` (checkpoints of each part under it).
    regress
        Classes that get a redshift ensemble (GaSNet-II: the extragalactic ones).
    members
        Regressors per class (the paper's 10).
    classifier_channels, classifier_hidden, regressor_channels, regressor_hidden
        The GaSNet-II ResNets (stem and block channels; dense units).
    epochs, patience, batch_size, lr, lr_halve_every
        GaSNet-II training: epoch limit, early-stopping patience, per-worker
        batch, Adam learning rate, halved every ``lr_halve_every`` epochs.
    fnet
        Also train FNet on QSOs.
    fnet_width, fnet_bin, fnet_kernel_scale, fnet_epochs, fnet_lr, fnet_batch_size
        FNet's size (1, 1, 1: the paper's network) and training.
    augment
        Online augmentation of training batches (extra noise, calibration tilt,
        masked runs; see :func:`jpasbatch.spectra.loop.augment`).
    max_train
        Cap on the training spectra of each part (smoke tests).
    only
        Train only these parts (``classifier``, ``z_galaxy``, ``z_qso``, ``fnet``);
        the model file then holds only them (default: all).
    workers, use_gpu, max_failures, ray, ray_address, threads
        Ray Train resources (one CPU or GPU per worker), retries, whether to use
        Ray at all, an existing cluster, and torch threads per worker.
    """

    model_config = ConfigDict(extra="forbid")

    data: Path
    out: Path = Path("runs")
    name: str = "spectra"
    regress: list[str] = ["GALAXY", "QSO"]
    members: int = Field(10, ge=1)
    classifier_channels: list[int] = [16, 16, 32, 64, 64]
    classifier_hidden: int = Field(128, ge=1)
    regressor_channels: list[int] = [8, 16, 16, 32, 32]
    regressor_hidden: int = Field(64, ge=1)
    epochs: int = Field(20, ge=1)
    patience: int = Field(6, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_halve_every: int = Field(5, ge=1)
    fnet: bool = True
    fnet_width: float = Field(0.25, gt=0)
    fnet_bin: int = Field(4, ge=1)
    fnet_kernel_scale: float = Field(4.0, gt=0)
    fnet_epochs: int = Field(10, ge=1)
    fnet_lr: float = Field(1e-3, gt=0)
    fnet_batch_size: int = Field(32, ge=1)
    augment: bool = True
    max_train: int | None = None
    only: list[str] | None = None
    seed: int = 0
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    max_failures: int = Field(1, ge=-1)
    ray: bool = True
    ray_address: str | None = None
    threads: int | None = Field(None, ge=1)

    @property
    def run_dir(self) -> Path:
        return self.out.resolve() / self.name


def _parts(spec: SpectraTrainSpec) -> dict[str, dict]:
    """Every network to train: part name -> loop config."""
    common = {
        "data": str(spec.data.resolve()),
        "seed": spec.seed,
        "max_train": spec.max_train,
        "augment": spec.augment,
        "threads": spec.threads,
        "patience": spec.patience,
    }
    gas = {"epochs": spec.epochs, "batch_size": spec.batch_size, "lr": spec.lr}
    gas["lr_halve_every"] = spec.lr_halve_every
    parts = {
        "classifier": common
        | gas
        | {
            "task": "classifier",
            "model": {
                "members": 1,
                "channels": tuple(spec.classifier_channels),
                "hidden": spec.classifier_hidden,
                "seed": spec.seed,
            },
        }
    }
    for cls in spec.regress:
        parts[f"z_{cls.lower()}"] = (
            common
            | gas
            | {
                "task": "regressor",
                "target_class": cls,
                "model": {
                    "members": spec.members,
                    "channels": tuple(spec.regressor_channels),
                    "hidden": spec.regressor_hidden,
                    "seed": spec.seed + 1 + CLASSES.index(cls),
                },
            }
        )
    if spec.fnet:
        parts["fnet"] = common | {
            "task": "fnet",
            "target_class": "QSO",
            "epochs": spec.fnet_epochs,
            "batch_size": spec.fnet_batch_size,
            "lr": spec.fnet_lr,
            "weight_decay": 1e-5,
            "model": {
                "width": spec.fnet_width,
                "bin": spec.fnet_bin,
                "kernel_scale": spec.fnet_kernel_scale,
                "seed": spec.seed,
            },
        }
    return parts


def _finished(run: Path, config: dict) -> dict | None:
    """The saved final state of a part that already ran to its end, else None."""
    path = run / FINAL_FILE
    if not path.exists():
        return None
    state = modelio.load_tree(path)
    return state if state.get("config") == config else None


def train(spec: SpectraTrainSpec, progress: bool = True) -> Path:
    """Train every part of ``spec``; returns the model folder."""
    run = spec.run_dir
    run.mkdir(parents=True, exist_ok=True)
    (run / "spec.json").write_text(spec.model_dump_json(indent=2))
    labels = SpectraStore(spec.data).index
    for col in ("CLASS", "Z", "SPLIT"):
        if col not in labels:
            from jpasbatch.core.errors import InputError

            raise InputError(f"training data need a {col} column", path=spec.data, column=col)
    saved: dict = {"classes": list(CLASSES), "parts": {}, "val": {}}
    for part, config in _parts(spec).items():
        if spec.only is not None and part not in spec.only:
            continue
        state = _finished(run / part, config)
        if state is None:
            if progress:
                log.info(f"[spectra-train] {part}: training")
            state = fit(
                train_loop_per_worker,
                config,
                run_dir=run / part,
                **spec.model_dump(
                    include={"ray", "workers", "use_gpu", "max_failures", "ray_address"}
                ),
            )
            state = {
                k: state[k]
                for k in ("best_model", "hparams", "history", "best", "best_epoch", "epoch")
            } | {"config": config}
            modelio.save_tree(run / part / FINAL_FILE, state)
        saved["parts"][part] = {
            "task": config["task"],
            "target_class": config.get("target_class"),
            "hparams": state["hparams"],
            "state_dict": state["best_model"],
        }
        saved["val"][part] = {
            "best": state["best"],
            "best_epoch": state["best_epoch"],
            "epochs_run": state["epoch"],
        }
        pd.DataFrame(state["history"]).to_csv(run / f"history_{part}.csv", index=False)
    saved["grid"] = SpectraStore(spec.data).grid.to_dict()
    saved["spec"] = json.loads(spec.model_dump_json())
    save_model(run / MODEL_FILE, saved)
    (run / "meta.json").write_text(
        json.dumps({"val": saved["val"], "spec": saved["spec"]}, indent=2, default=str)
    )
    _plot_history(run)
    return run


def save_model(path: Path, saved: dict) -> Path:
    """Write the model dict :func:`train` builds as ``model.safetensors`` + ``model.json``.

    The parts' weights go to the safetensors file as ``<part>.<parameter>``;
    everything else is the card.
    """
    tensors = {
        f"{part}.{k}": v for part, p in saved["parts"].items() for k, v in p["state_dict"].items()
    }
    parts = {
        part: {k: v for k, v in p.items() if k != "state_dict"}
        for part, p in saved["parts"].items()
    }
    card = {"kind": KIND} | saved | {"parts": parts}
    return modelio.save_model(path, tensors, card)


def load_model(path: str | Path) -> dict:
    """The model dict :func:`save_model` wrote (each part's ``state_dict`` back in place)."""
    tensors, card = modelio.load_model(path, ("classes", "parts", "val", "grid"), KIND)
    saved = {k: v for k, v in card.items() if k not in ("kind", "weights")}
    for part, p in saved["parts"].items():
        prefix = f"{part}."
        p["state_dict"] = {
            k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)
        }
    return saved


def _plot_history(run: Path) -> None:
    from matplotlib.figure import Figure

    files = sorted(run.glob("history_*.csv"))
    fig = Figure(figsize=(4 * len(files), 3))
    axes = fig.subplots(1, len(files), squeeze=False)[0]
    for ax, f in zip(axes, files, strict=True):
        h = pd.read_csv(f)
        col = "val_accuracy" if "val_accuracy" in h else "val_mae"
        ax.plot(h["epoch"], h[col], "o-", label=col)
        ax.set(xlabel="epoch", ylabel=col, title=f.stem.removeprefix("history_"))
        ax2 = ax.twinx()
        ax2.plot(h["epoch"], h["loss"], "s--", color="0.5", label="train loss")
        ax2.set_ylabel("training loss")
    fig.tight_layout()
    fig.savefig(run / "history.png", dpi=90)


__all__ = ["MODEL_FILE", "SpectraTrainSpec", "load_model", "save_model", "train"]
