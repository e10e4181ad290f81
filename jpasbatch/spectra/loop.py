"""The spectral models' per-worker training loop: plain PyTorch, with or without Ray Train.

One loop trains any of the three kinds of network on a prepared-spectra
folder (:mod:`jpasbatch.spectra.store` with ``CLASS``, ``Z`` and ``SPLIT``):

``classifier``
    GaSNet-II's ResNet_P: one member, softmax over :data:`CLASSES`,
    cross-entropy; selected on validation accuracy.
``regressor``
    A GaSNet-II redshift ensemble (``members`` networks, different seeds, the
    same batches) on the spectra of ``target_class`` only; Huber loss
    (delta 0.1) on z clipped to [0, 5]; selected on the validation MAE of the
    ensemble mean. Learning rate halved every ``lr_halve_every`` epochs.
``fnet``
    FNet on ``target_class`` (QSO); MSE, Adam with weight decay 1e-5, gradient
    clipping, learning rate x0.1 at 75 / 85 / 90 % of the epochs (the paper's
    epochs 75, 85, 90 of 100).

The few Ray calls live in :mod:`jpasbatch.distribute.ray`; every epoch checkpoints
the whole state (weights, optimiser, epoch, best weights, history) so a rerun
resumes exactly, and without ``config["ray"]`` the same function runs in this
process (the GPU machines have no Ray).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from jpasbatch.distribute.ray import (
    end_epoch,
    global_steps,
    load_state,
    prepare,
    rank_world,
    save_state,
    throughput,
)
from jpasbatch.spectra.emulate import CLASSES
from jpasbatch.spectra.fnet import FNet
from jpasbatch.spectra.gasnet import Z_RANGE, GaSNetEnsemble, huber
from jpasbatch.spectra.grid import network_input
from jpasbatch.spectra.store import SpectraStore

#: Defaults of the loop's config dict (the launcher fills them in).
DEFAULTS: dict = {
    "data": None,
    "task": "classifier",  # classifier | regressor | fnet
    "target_class": None,  # regressor / fnet: train on this class only
    "model": {},
    "lr": 1e-3,
    "lr_halve_every": 5,
    "weight_decay": 0.0,
    "batch_size": 64,
    "epochs": 20,
    "patience": 6,
    "seed": 0,
    "max_train": None,  # cap on training spectra (smoke tests)
    "augment": False,  # online noise / calibration / mask augmentation
    "threads": None,
    "checkpoint_dir": None,
    "device": "cpu",
    "ray": False,
}


def load_split(
    data: str, split: str, target_class: str | None, mode: str, rank: int = 0, world: int = 1,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Inputs ``(n, 2, L)``, classes, redshifts and normalised noise sigma of one split's shard."""
    st = SpectraStore(data)
    idx = st.index
    sel = (idx["SPLIT"] == split).to_numpy().copy()
    if target_class is not None:
        sel &= (idx["CLASS"] == target_class).to_numpy()
    rows = np.flatnonzero(sel)
    if limit is not None:
        rows = rows[:limit]
    rows = rows[rank::world]  # each worker reads only its shard
    flux, ivar, good = st.arrays(rows)
    x, sigma = network_input(flux, good, mode=mode, ivar=ivar)
    y = np.array([CLASSES.index(c) for c in idx["CLASS"].iloc[rows]], dtype=np.int64)
    z = idx["Z"].iloc[rows].to_numpy(np.float32)
    return x, y, z, sigma


def augment(x: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A degraded copy of a batch: more noise, a calibration tilt, a masked run of pixels.

    GaSNet-II proposes "online additive-noise data augmentation" against
    overfitting; here each spectrum gets extra Gaussian noise of up to its own
    noise level (so it looks like a shorter exposure), a smooth multiplicative
    tilt (flux-calibration error, ~10% across the range) and, one time in
    three, a masked run of up to 300 pixels (a bad column, a missing arm).
    """
    b, _, n = x.shape
    x = x.clone()
    level = torch.rand(b, 1, generator=gen)
    x[:, 0] += level * sigma * torch.randn(b, n, generator=gen)
    t = torch.linspace(-1, 1, n)
    x[:, 0] *= torch.exp(0.05 * torch.randn(b, 1, generator=gen) * t)
    for i in torch.nonzero(torch.rand(b, generator=gen) < 1 / 3).flatten().tolist():
        start = int(torch.randint(0, n, (1,), generator=gen))
        length = int(torch.randint(5, 300, (1,), generator=gen))
        x[i, :, start : start + length] = 0.0
    return x


def build_model(task: str, hparams: dict, n_pixels: int) -> torch.nn.Module:
    """The network a task trains, from its hyper-parameters."""
    if task == "fnet":
        return FNet(**({"n_pixels": n_pixels, "in_channels": 2} | hparams))
    n_out = len(CLASSES) if task == "classifier" else 1
    return GaSNetEnsemble(**({"n_pixels": n_pixels, "n_out": n_out} | hparams))


def _loss(task: str, out: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    if task == "classifier":
        return F.cross_entropy(out[:, 0], y)
    if task == "regressor":
        zt = z.clamp(*Z_RANGE)[:, None, None]
        # members are independent: the sum of their mean losses trains each on its own
        return huber(out, zt).mean(0).sum()
    return F.mse_loss(out, z)


def _lr_factor(task: str, epoch: int, cfg: dict) -> float:
    if task == "fnet":
        frac = epoch / cfg["epochs"]
        return 0.1 ** sum(frac >= m for m in (0.75, 0.85, 0.9))
    return 0.5 ** (epoch // cfg["lr_halve_every"])


@torch.no_grad()
def predict_batches(model, x: np.ndarray, device, batch: int = 256) -> np.ndarray:
    """Eval-mode outputs of ``model`` for inputs ``x`` in batches."""
    model.eval()
    outs = [
        model(torch.from_numpy(x[s : s + batch]).to(device)).float().cpu()
        for s in range(0, len(x), batch)
    ]
    return torch.cat(outs).numpy() if outs else np.zeros((0,))


def validation_metric(task: str, out: np.ndarray, y: np.ndarray, z: np.ndarray) -> dict:
    """The model-selection metric: accuracy (higher is better) or MAE (lower)."""
    if task == "classifier":
        return {"val_accuracy": float(np.mean(out[:, 0].argmax(1) == y))}
    if task == "regressor":
        zp = np.clip(out[:, :, 0], *Z_RANGE)
        return {
            "val_mae": float(np.mean(np.abs(zp.mean(1) - z))),
            "val_member_mae": float(np.mean(np.abs(zp - z[:, None]))),
        }
    return {"val_mae": float(np.mean(np.abs(np.clip(out, *Z_RANGE) - z)))}


def train_loop_per_worker(config: dict) -> dict | None:
    """Train one network; returns the final state (under Ray: None, the state is checkpointed)."""
    cfg = {**DEFAULTS, **config}
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    task = cfg["task"]
    rank, world = rank_world(cfg)
    mode = "zero_mean" if task == "fnet" else "rms"
    x_tr, y_tr, z_tr, s_tr = load_split(
        cfg["data"], "train", cfg["target_class"], mode, rank, world, cfg["max_train"]
    )
    x_va, y_va, z_va, _ = load_split(cfg["data"], "validation", cfg["target_class"], mode)
    torch.manual_seed(cfg["seed"])
    model = build_model(task, cfg["model"], x_tr.shape[-1])
    state = load_state(cfg)
    if state is not None:
        model.load_state_dict(state["model"])
    net, device = prepare(model, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    higher = task == "classifier"
    key = "val_accuracy" if higher else "val_mae"
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    else:
        state = {"epoch": 0, "best": None, "best_epoch": 0, "best_model": None}
        state |= {"bad_epochs": 0, "history": []}

    xt, yt, zt, st = (torch.from_numpy(a) for a in (x_tr, y_tr, z_tr, s_tr))
    n, bs = len(y_tr), cfg["batch_size"]
    steps = global_steps(n, bs, world)
    while state["bad_epochs"] < cfg["patience"] and state["epoch"] < cfg["epochs"]:
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = cfg["lr"] * _lr_factor(task, state["epoch"], cfg)
        net.train()
        # seeded per (seed, rank, epoch): a resumed run repeats the uninterrupted one
        rng = np.random.default_rng([cfg["seed"], rank, state["epoch"]])
        torch.manual_seed(int(rng.integers(2**31)))  # dropout masks
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))  # augmentation
        order = torch.from_numpy(np.resize(rng.permutation(n), steps * bs))
        total = 0.0
        for s in range(steps):
            idx = order[s * bs : (s + 1) * bs]
            xb = augment(xt[idx], st[idx], gen) if cfg["augment"] else xt[idx]
            out = net(xb.to(device))
            loss = _loss(task, out, yt[idx].to(device), zt[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if task == "fnet":
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.item())
        seconds = time.perf_counter() - t0
        metric = validation_metric(task, predict_batches(model, x_va, device), y_va, z_va)
        end_epoch(state, model, metric[key], best="best", higher=higher)
        metrics = {
            "epoch": state["epoch"],
            "loss": total / steps,
            **metric,
            "lr": opt.param_groups[0]["lr"],
            **throughput(seconds, steps, bs, world),
        }
        state["history"].append(metrics)
        state["model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        state["optimizer"] = opt.state_dict()
        state["hparams"] = model.hparams
        save_state(state, metrics, cfg, rank)
    return None if cfg["ray"] else state
