"""The foundation model's per-worker training loop: plain PyTorch, with or without Ray Train.

:func:`train_loop_per_worker` takes one config dict (Ray Train's convention);
the few Ray calls live in :mod:`jpasbatch.distribute.ray`, so without
``config["ray"]`` the same function trains in this process.

Each step draws a batch of training objects by inverse-density sampling
(:mod:`jpasbatch.foundation.sampling`), plays the masked multi-token game on it
(:mod:`jpasbatch.foundation.masking`) and, with domain adaptation, adds a mock
batch and an unlabelled observed batch for the weighted MMD. An epoch is a
fixed number of steps (sampling is with replacement). After each epoch the
validation split gives the masked-objective loss (fixed masks, so epochs
compare), the weighted F1 of the class and the galaxy photo-z sigma_NMAD from
the full observational context; the best epoch by validation loss is kept.

State saved every epoch (``state.safetensors`` + ``state.json``): model (with the reweighting MLP),
optimiser, epoch, best epoch and its weights, early-stopping counter, history.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from jpasbatch.core.metrics import confusion_matrix, weighted_f1
from jpasbatch.distribute.ray import (
    end_epoch,
    global_steps,
    load_state,
    prepare,
    rank_world,
    save_state,
    throughput,
)
from jpasbatch.foundation.data import class_index, read_rows, read_unlabelled
from jpasbatch.foundation.evaluate import photoz_stats
from jpasbatch.foundation.masking import observation_context, sample_masks, token_weights
from jpasbatch.foundation.model import FoundationModel
from jpasbatch.foundation.objective import Objective
from jpasbatch.foundation.predict import decode_outputs, run_model
from jpasbatch.foundation.sampling import sampling_weights
from jpasbatch.foundation.tokens import TokenArrays, TokenNorm, encode_table, token_index

#: Defaults of the loop's config dict (the launcher's spec fills them in).
DEFAULTS: dict = {
    "train_paths": [],
    "val_paths": None,  # None: the training inputs' validation split
    "observed_paths": None,  # unlabelled observed catalogue (domain adaptation)
    "external_paths": None,
    "exclude_paths": None,
    "norm": None,
    "token_freq": None,
    "model": {},
    "lr": 3e-4,
    "weight_decay": 1e-4,
    "warmup_steps": 200,
    "batch_size": 256,
    "steps_per_epoch": None,  # None: training rows / batch
    "epochs": 20,
    "patience": 5,
    "seed": 0,
    "n_targets": 5,
    "min_context": 5,
    "full_context": 0.25,
    "label_boost": 8.0,
    "beta_nll": 0.0,
    "targets": None,  # token names that may be targets (None: all)
    "sampling": "inverse_density",  # inverse_density, column (the mocks' WEIGHT), uniform
    "mmd": False,
    "lambda_mmd": 0.2,
    "lambda_ent": 0.1,
    "lambda_ess": 0.05,
    "ess_threshold": 0.7,
    "tau": 1.0,
    "mmd_batch": 256,
    "max_train_rows": None,
    "max_val_rows": 4000,
    "max_unlabelled_rows": None,
    "checkpoint_dir": None,
    "device": "cpu",
    "ray": False,
}


def _object_probabilities(table, how: str, rng: np.random.Generator) -> np.ndarray:
    if how == "inverse_density":
        return sampling_weights(table, rng)
    if how == "column":
        w = np.nan_to_num(table["WEIGHT"].to_numpy(zero_copy_only=False).astype(float))
        return w / w.sum()
    return np.full(table.num_rows, 1.0 / table.num_rows)


def _tensors(tokens: TokenArrays, idx: np.ndarray, mask: np.ndarray, device) -> tuple:
    return (
        torch.from_numpy(tokens.values[idx]).to(device),
        torch.from_numpy(tokens.errors[idx]).to(device),
        torch.from_numpy(mask).to(device),
    )


def make_batch(tokens: TokenArrays, idx: np.ndarray, masks, device) -> dict:
    """The objective's inputs for objects ``idx`` under ``masks``."""
    values, errors, context = _tensors(tokens, idx, masks.context, device)
    targets = torch.from_numpy(masks.targets).to(device)
    return {
        "values": values,
        "errors": errors,
        "context": context,
        "targets": targets,
        "valid": torch.from_numpy(masks.target_valid).to(device),
        "y": torch.gather(values, 1, targets),
        "y_err": torch.gather(errors, 1, targets),
    }


def train_loop_per_worker(config: dict) -> dict | None:
    """Train the foundation model; returns the final state (under Ray: None, see the checkpoint)."""
    cfg = {**DEFAULTS, **config}
    rank, world = rank_world(cfg)
    torch.manual_seed(cfg["seed"])
    norm = TokenNorm.from_dict(cfg["norm"])
    freq = np.asarray(cfg["token_freq"], float)
    w_target = token_weights(freq, cfg["label_boost"])
    w_context = token_weights(freq, 1.0)
    allowed = None
    if cfg["targets"]:
        allowed = np.zeros(len(freq), bool)
        allowed[[token_index(t) for t in cfg["targets"]]] = True

    train = read_rows(
        cfg["train_paths"], ["train"], rank=rank, world=world,
        max_rows=cfg["max_train_rows"], seed=cfg["seed"],
    )  # fmt: skip
    tokens = norm.apply(encode_table(train))
    prob = _object_probabilities(train, cfg["sampling"], np.random.default_rng([cfg["seed"], rank]))
    val_table = read_rows(
        cfg["val_paths"] or cfg["train_paths"], ["validation"],
        max_rows=cfg["max_val_rows"], seed=cfg["seed"],
    )  # fmt: skip
    val = norm.apply(encode_table(val_table))
    unlabelled = None
    if cfg["mmd"]:
        obs = read_unlabelled(
            cfg["observed_paths"], external=cfg["external_paths"], exclude=cfg["exclude_paths"],
            rank=rank, world=world, max_rows=cfg["max_unlabelled_rows"], seed=cfg["seed"],
        )  # fmt: skip
        unlabelled = norm.apply(encode_table(obs))

    model = FoundationModel(**cfg["model"])
    da = None
    if cfg["mmd"]:
        keys = ("lambda_mmd", "lambda_ent", "lambda_ess", "ess_threshold", "tau")
        da = {k: cfg[k] for k in keys}
    objective = Objective(model, da, beta=cfg["beta_nll"])
    state = load_state(cfg)
    if state is not None:
        objective.load_state_dict(state["objective"])
    net, device = prepare(objective, cfg)
    opt = torch.optim.AdamW(objective.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps = global_steps(
        cfg["steps_per_epoch"] * cfg["batch_size"] if cfg["steps_per_epoch"] else len(train),
        cfg["batch_size"],
        world,
    )
    # linear warm-up, then inverse square root: a function of the step alone, so a
    # resumed run with a larger epoch limit follows the uninterrupted run's schedule
    warm = cfg["warmup_steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, math.sqrt(warm / (s + 1)))
    )
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    else:
        state = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "best_model": None}
        state |= {"bad_epochs": 0, "history": []}
    ids = torch.arange(tokens.values.shape[1], device=device)
    bs = cfg["batch_size"]
    while state["bad_epochs"] < cfg["patience"] and state["epoch"] < cfg["epochs"]:
        t0 = time.perf_counter()
        net.train()
        # seeds per (seed, rank, epoch): a resumed run repeats the uninterrupted one exactly
        rng = np.random.default_rng([cfg["seed"], rank, state["epoch"]])
        torch.manual_seed(int(rng.integers(2**31)))  # dropout masks
        sums: dict[str, float] = {}
        for _ in range(steps):
            idx = rng.choice(len(prob), bs, p=prob)
            masks = sample_masks(
                tokens.present[idx], w_target, w_context, rng,
                n_targets=cfg["n_targets"], min_context=cfg["min_context"],
                full_context=cfg["full_context"], allowed_targets=allowed,
            )  # fmt: skip
            batch = make_batch(tokens, idx, masks, device)
            extra = {}
            if unlabelled is not None:
                si = rng.choice(len(prob), cfg["mmd_batch"], p=prob)
                ti = rng.choice(len(unlabelled), cfg["mmd_batch"])
                extra = {
                    "source": _tensors(tokens, si, observation_context(tokens.present[si]), device),
                    "target_domain": _tensors(
                        unlabelled, ti, observation_context(unlabelled.present[ti]), device
                    ),
                }
            loss, parts = net(ids, **batch, **extra)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(objective.parameters(), 1.0)
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
        seconds = time.perf_counter() - t0
        scores = validate(
            objective, val, val_table, norm, w_target, w_context, cfg, device, allowed
        )
        end_epoch(state, model, scores["val_loss"], best="best_loss", higher=False)
        metrics = {
            "epoch": state["epoch"],
            **{k: v / steps for k, v in sums.items()},
            **scores,
            "lr": sched.get_last_lr()[0],
            **throughput(seconds, steps, bs, world),
        }
        state["history"].append(metrics)
        state["objective"] = {k: v.detach().cpu() for k, v in objective.state_dict().items()}
        state["optimizer"] = opt.state_dict()
        state["scheduler"] = sched.state_dict()
        save_state(state, metrics, cfg, rank)
    # Ray cannot ship tensors back from a worker; the last checkpoint holds the state
    return None if cfg["ray"] else state


def validate(
    objective: Objective,
    val: TokenArrays,
    val_table,
    norm: TokenNorm,
    w_target: np.ndarray,
    w_context: np.ndarray,
    cfg: dict,
    device,
    allowed: np.ndarray | None = None,
) -> dict[str, float]:
    """Validation loss (fixed masks), weighted F1 and galaxy sigma_NMAD (full context)."""
    objective.eval()
    rng = np.random.default_rng([cfg["seed"], 10**6])  # the same masks every epoch
    ids = torch.arange(val.values.shape[1], device=device)
    total, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(val), 1024):
            idx = np.arange(s, min(s + 1024, len(val)))
            masks = sample_masks(
                val.present[idx], w_target, w_context, rng,
                n_targets=cfg["n_targets"], min_context=cfg["min_context"],
                full_context=cfg["full_context"], allowed_targets=allowed,
            )  # fmt: skip
            loss, _ = objective(ids, **make_batch(val, idx, masks, device))
            total += float(loss) * len(idx)
            n += len(idx)
    raw, _ = run_model(objective.model, val, observation_context(val.present), device=device)
    cols = decode_outputs(raw, norm)
    objective.train()
    from jpasbatch.catalog.schemas import CLASSES

    y = class_index(val_table)
    p = np.stack([cols[f"P_{c}"] for c in CLASSES], 1)
    ok = (y >= 0) & np.isfinite(p).all(1)
    f1 = weighted_f1(confusion_matrix(y[ok], p[ok].argmax(1), n_classes=len(CLASSES)))
    z = val_table["Z"].to_numpy(zero_copy_only=False).astype(float)
    gal = (y == CLASSES.index("GALAXY")) & np.isfinite(cols["Z_PHOT"])
    nmad = photoz_stats(cols["Z_PHOT"][gal], z[gal])["nmad"]
    return {"val_loss": total / max(n, 1), "val_weighted_f1": f1, "val_galaxy_nmad": nmad}
