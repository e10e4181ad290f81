"""The committee's per-worker training loop: plain PyTorch, with or without Ray Train.

:func:`train_loop_per_worker` takes one config dict (Ray Train's convention);
the few Ray calls live in :mod:`jpasbatch.distribute.ray`, so without ``config["ray"]``
the same function trains in this process (how the GPU machines, which have no
Ray, run it).

State saved every epoch (``state.safetensors`` + ``state.json``): model, optimiser, epoch, the best
validation weighted F1 with its weights, the early-stopping counter and the
history, so a resumed run continues exactly where the last checkpoint was.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.data import read_labelled, training_weights
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.classify.model import CommitteeMLP, committee_probabilities
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

#: Defaults of the loop's config dict (the launcher's spec fills them in).
DEFAULTS: dict = {
    "train_paths": [],
    "train_splits": ["train"],
    "val_paths": None,  # None: the training inputs' validation split
    "val_splits": ["validation"],
    "scaler": None,
    "model": {"members": 8, "hidden": 200, "layers": 8, "dropout": 0.15, "max_norm": 2.0},
    "lr": 1e-3,
    "batch_size": 512,
    "epochs": 30,
    "patience": 5,
    "seed": 0,
    "weighting": "column",  # column: the mocks' WEIGHT; balanced: 1/N_class; none
    "prior": None,  # pi_natural / pi_training per class, for validation F1
    "init_from": None,  # a saved classifier (model.json) to start from: fine-tuning
    "checkpoint_dir": None,
    "device": "cpu",
    "ray": False,
}


def train_loop_per_worker(config: dict) -> dict | None:
    """Train a committee; returns the final state (under Ray: None, the state is checkpointed)."""
    cfg = {**DEFAULTS, **config}
    rank, world = rank_world(cfg)
    scaler = FeatureScaler(**cfg["scaler"])

    train = read_labelled(cfg["train_paths"], cfg["train_splits"], rank=rank, world=world)
    val = read_labelled(cfg["val_paths"] or cfg["train_paths"], cfg["val_splits"])
    x_tr, ok = scaler.transform(train.flux)
    y_tr, w_tr = train.y[ok], training_weights(train.y[ok], train.weight[ok], cfg["weighting"])
    x_tr = x_tr[ok]
    x_val, ok_val = scaler.transform(val.flux)
    x_val, y_val, w_val = x_val[ok_val], val.y[ok_val], val.abundance[ok_val]

    model = CommitteeMLP(scaler.n_features, seed=cfg["seed"], **cfg["model"])
    if cfg["init_from"] is not None:
        model.load_state_dict(Classifier.load(cfg["init_from"]).model.state_dict())
    state = load_state(cfg)
    if state is not None:
        model.load_state_dict(state["model"])
    net, device = prepare(model, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    else:
        state = {"epoch": 0, "best_f1": -1.0, "best_epoch": 0, "best_model": None}
        state |= {"bad_epochs": 0, "history": []}

    xt = torch.from_numpy(x_tr).to(device)
    yt = torch.from_numpy(y_tr).to(device)
    wt = torch.from_numpy(w_tr.astype(np.float32)).to(device)
    k, n, bs = model.members, len(y_tr), cfg["batch_size"]
    steps = global_steps(n, bs, world)
    while state["bad_epochs"] < cfg["patience"] and state["epoch"] < cfg["epochs"]:
        t0 = time.perf_counter()
        net.train()
        # seeds per (seed, rank, epoch): a resumed run repeats the uninterrupted one exactly
        rng = np.random.default_rng([cfg["seed"], rank, state["epoch"]])
        torch.manual_seed(int(rng.integers(2**31)))  # dropout masks
        # each member sees its own shuffle of the shard
        order = torch.from_numpy(np.stack([rng.permutation(n) for _ in range(k)]))
        order = order.repeat(1, -(-steps * bs // n))[:, : steps * bs].to(device)
        total = 0.0
        for s in range(steps):
            idx = order[:, s * bs : (s + 1) * bs]
            logits = net(xt[idx])
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), yt[idx].reshape(-1), reduction="none"
            )
            w = wt[idx].reshape(-1)
            loss = (loss * w).sum() / w.sum() * k
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.apply_max_norm()
            total += loss.item() / k
        seconds = time.perf_counter() - t0
        f1 = validation_f1(model, x_val, y_val, device, cfg["prior"], w_val)
        end_epoch(state, model, f1, best="best_f1", higher=True)
        metrics = {
            "epoch": state["epoch"],
            "loss": total / steps,
            "val_weighted_f1": f1,
            "best_val_weighted_f1": state["best_f1"],
            **throughput(seconds, steps, bs, world),
        }
        state["history"].append(metrics)
        state["model"] = {key: v.detach().cpu() for key, v in model.state_dict().items()}
        state["optimizer"] = opt.state_dict()
        save_state(state, metrics, cfg, rank)
    # Ray cannot ship tensors back from a worker; the last checkpoint holds the state
    return None if cfg["ray"] else state


def validation_f1(
    model: CommitteeMLP,
    x: np.ndarray,
    y: np.ndarray,
    device,
    prior: list[float] | None = None,
    weight: np.ndarray | None = None,
) -> float:
    """Weighted F1 of the prior-corrected committee on validation data, at natural abundance."""
    model.eval()
    ratio = torch.tensor(prior if prior is not None else [1.0] * 4, device=device)
    with torch.no_grad():
        probs = []
        for s in range(0, len(x), 65536):
            xb = torch.from_numpy(x[s : s + 65536]).to(device)
            probs.append((committee_probabilities(torch.softmax(model(xb), -1)) * ratio).cpu())
    pred = torch.cat(probs).argmax(1).numpy()
    return float(weighted_f1(confusion_matrix(y, pred, n_classes=4, sample_weight=weight)))
