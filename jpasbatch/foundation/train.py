"""The foundation model's training launcher: a typed spec in, a saved predictor out.

Trains through Ray Train's ``TorchTrainer`` (``ray=True``, the default: any
number of CPU or GPU workers, a checkpoint per epoch, retries from
``FailureConfig``; a rerun with the same ``out`` / ``name`` resumes from the
last checkpoint), or through the same loop in this process (``ray=False``).
The driver fits what every worker must share (token standardisation and token
frequencies) on a sample of the training split, and afterwards saves the best
epoch's weights as ``out/name/model.safetensors`` with its card ``model.json``
(:class:`FoundationPredictor`), and ``history.csv`` / ``history.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jpasbatch.core.provenance import provenance
from jpasbatch.distribute.ray import fit
from jpasbatch.foundation.data import read_rows
from jpasbatch.foundation.loop import train_loop_per_worker
from jpasbatch.foundation.model import FULL_SIZE, FoundationModel, count_parameters
from jpasbatch.foundation.predict import FoundationPredictor
from jpasbatch.foundation.tokens import TokenNorm, encode_table, token_frequencies


class FoundationSpec(BaseModel):
    """What to train, on what, and where.

    Attributes
    ----------
    train
        ``MOCK_EXT`` (or ``MOCK``) Parquet files or folders; ``SPLIT == train``
        rows train, ``validation`` rows select the best epoch.
    validation
        Other inputs for the validation split (default: ``train``'s).
    observed, external, exclude
        Domain adaptation: the ingested observed catalogue (unlabelled), its
        external photometry folders (joined on ``OBJECT_ID``), and held-out
        test sets whose objects are left out of it.
    out, name
        Run folder ``out/name``: Ray's checkpoints, ``model.json`` +
        ``model.safetensors``, ``history.csv``.
    d_model, n_heads, enc_layers, enc_ffn, dec_layers, dec_ffn, dropout
        Architecture (default: OJALA's, ~2.7 M parameters).
    lr, weight_decay, warmup_steps, batch_size, steps_per_epoch, epochs, patience
        AdamW, linear warm-up then inverse-square-root decay; per-worker batch; steps
        per epoch (default: training rows / batch); epoch limit and early
        stopping on the validation loss.
    n_targets, min_context, full_context, label_boost
        The masked game: targets per object (5), smallest context (5), the
        probability of a full context, and the factor on the target weight of
        label tokens (1 = OJALA's pure inverse frequency; more spends a short
        CPU training on the labels rather than on band reconstruction).
    targets
        Token names that may be prediction targets (default: every token, as
        OJALA; e.g. the labels only, to skip band reconstruction).
    beta_nll
        0: OJALA's Gaussian NLL. beta > 0: beta-NLL (Seitzer et al. 2022), each
        regression term times its detached total variance^beta, so that
        precisely measured bands (tiny sigma_obs) do not dominate the gradient
        of the shared network; 0.5 in short trainings.
    sampling
        Object sampling: ``inverse_density`` (OJALA Appendix B), ``column``
        (the mocks' ``WEIGHT``) or ``uniform``.
    mmd, lambda_mmd, lambda_ent, lambda_ess, ess_threshold, tau, mmd_batch
        Weighted-MMD domain adaptation and its weights (OJALA: 0.2, 0.1, 0.05,
        70%), the reweighting softmax temperature and the per-domain batch.
    max_train_rows, max_val_rows, max_unlabelled_rows
        Caps per worker (None: everything).
    workers, use_gpu, max_failures, ray, ray_address
        Ray Train resources, retries, whether to use Ray, and the cluster address.
    """

    model_config = ConfigDict(extra="forbid")

    train: list[Path]
    validation: list[Path] | None = None
    observed: list[Path] | None = None
    external: list[Path] | None = None
    exclude: list[Path] | None = None
    out: Path = Path("runs")
    name: str = "foundation"
    d_model: int = Field(FULL_SIZE["d_model"], ge=8)
    n_heads: int = Field(FULL_SIZE["n_heads"], ge=1)
    enc_layers: int = Field(FULL_SIZE["enc_layers"], ge=1)
    enc_ffn: int = Field(FULL_SIZE["enc_ffn"], ge=1)
    dec_layers: int = Field(FULL_SIZE["dec_layers"], ge=1)
    dec_ffn: int = Field(FULL_SIZE["dec_ffn"], ge=1)
    dropout: float = Field(FULL_SIZE["dropout"], ge=0, lt=1)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(200, ge=1)
    batch_size: int = Field(256, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1)
    epochs: int = Field(20, ge=1)
    patience: int = Field(5, ge=1)
    seed: int = 0
    n_targets: int = Field(5, ge=1)
    min_context: int = Field(5, ge=1)
    full_context: float = Field(0.25, ge=0, le=1)
    label_boost: float = Field(8.0, gt=0)
    beta_nll: float = Field(0.0, ge=0, le=1)
    targets: list[str] | None = None
    sampling: str = Field("inverse_density", pattern="^(inverse_density|column|uniform)$")
    mmd: bool = False
    lambda_mmd: float = Field(0.2, ge=0)
    lambda_ent: float = Field(0.1, ge=0)
    lambda_ess: float = Field(0.05, ge=0)
    ess_threshold: float = Field(0.7, ge=0, le=1)
    tau: float = Field(1.0, gt=0)
    mmd_batch: int = Field(256, ge=2)
    max_train_rows: int | None = Field(None, ge=1)
    max_val_rows: int = Field(4000, ge=1)
    max_unlabelled_rows: int | None = Field(None, ge=1)
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    max_failures: int = Field(1, ge=-1)
    ray: bool = True
    ray_address: str | None = None

    @field_validator("targets")
    @classmethod
    def _known_tokens(cls, v: list[str] | None) -> list[str] | None:
        from jpasbatch.foundation.tokens import names

        unknown = sorted(set(v or []) - set(names()))
        if unknown:
            raise ValueError(f"unknown target tokens {unknown}")
        return v

    @property
    def run_dir(self) -> Path:
        return self.out.resolve() / self.name

    @property
    def architecture(self) -> dict:
        return self.model_dump(include=set(FULL_SIZE))


def _abs(paths: list[Path] | None) -> list[str] | None:
    return [str(p.resolve()) for p in paths] if paths else None


def fit_norm(spec: FoundationSpec, sample: int = 100_000) -> tuple[TokenNorm, np.ndarray]:
    """Token standardisation and token frequencies from (a sample of) the training split."""
    rows = read_rows(spec.train, ["train"], max_rows=sample, seed=spec.seed)
    tokens = encode_table(rows)
    return TokenNorm.fit(tokens), token_frequencies(tokens.present)


def train(spec: FoundationSpec) -> Path:
    """Train as ``spec`` says; returns the saved model's card (``model.json``)."""
    if spec.mmd and not spec.observed:
        raise ValueError("domain adaptation (mmd) needs the observed catalogue (observed=...)")
    run = spec.run_dir
    run.mkdir(parents=True, exist_ok=True)
    (run / "spec.json").write_text(spec.model_dump_json(indent=2))
    norm, freq = fit_norm(spec)
    config = {
        "train_paths": _abs(spec.train),
        "val_paths": _abs(spec.validation),
        "observed_paths": _abs(spec.observed),
        "external_paths": _abs(spec.external),
        "exclude_paths": _abs(spec.exclude),
        "norm": norm.to_dict(),
        "token_freq": freq.tolist(),
        "model": spec.architecture,
        **spec.model_dump(
            exclude={
                "train", "validation", "observed", "external", "exclude", "out", "name",
                "workers", "use_gpu", "max_failures", "ray", "ray_address", *FULL_SIZE,
            }
        ),
    }  # fmt: skip
    state = fit(
        train_loop_per_worker,
        config,
        run_dir=run,
        **spec.model_dump(include={"ray", "workers", "use_gpu", "max_failures", "ray_address"}),
    )
    model = FoundationModel(**spec.architecture)
    model.load_state_dict(state["best_model"])
    last = state["history"][-1]
    meta = {
        "spec": json.loads(spec.model_dump_json()),
        "parameters": count_parameters(model),
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_loss"],
        "epochs_run": state["epoch"],
        "last_epoch": last,
        "token_frequencies": freq.tolist(),
        "provenance": provenance(parameters=json.loads(spec.model_dump_json())),
    }
    pd.DataFrame(state["history"]).to_csv(run / "history.csv", index=False)
    _plot_history(state["history"], run / "history.png")
    return FoundationPredictor(model, norm, meta).save(run / "model.json")


def _plot_history(history: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    h = pd.DataFrame(history)
    fig = Figure(figsize=(11, 3))
    a, b, c = fig.subplots(1, 3)
    a.plot(h["epoch"], h["loss"], "o-", label="training")
    a.plot(h["epoch"], h["val_loss"], "s-", label="validation")
    a.set(xlabel="epoch", ylabel="masked-token loss")
    a.legend()
    b.plot(h["epoch"], h["val_weighted_f1"], "o-")
    b.set(xlabel="epoch", ylabel="validation weighted F1")
    c.plot(h["epoch"], h["val_galaxy_nmad"], "o-")
    c.set(xlabel="epoch", ylabel="validation galaxy sigma_NMAD")
    if "mmd2" in h:
        ax = c.twinx()
        ax.plot(h["epoch"], h["mmd2"], "r--", label="MMD^2")
        ax.set_ylabel("MMD^2", color="r")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
