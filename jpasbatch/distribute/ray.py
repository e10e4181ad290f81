"""The thin Ray Train layer every model's training uses.

A model's per-worker loop is plain PyTorch taking one config dict (Ray Train's
convention). With ``config["ray"]`` true it runs inside a ``TorchTrainer``
worker and calls the functions here for the few things Ray must do: rank and
world size, ``prepare_model`` (DDP and device), ``get_checkpoint`` to resume and
``report`` once per epoch. Without it the same loop trains in the calling
process and checkpoints to ``config["checkpoint_dir"]`` (how machines without
Ray, such as the GPU nodes, run it). Ray is imported only on the Ray path.

A loop's state is one dict saved each epoch: whatever it needs to continue
exactly where it stopped (weights, optimiser, epoch, history...). Its tensors go
to ``state.safetensors`` and the rest to ``state.json``
(:func:`jpasbatch.core.modelio.save_tree`): no pickle, even for checkpoints.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from jpasbatch.core import modelio
from jpasbatch.core.errors import InputError

#: The checkpoint's card (its tensors are in ``state.safetensors`` beside it).
STATE_FILE = "state.json"


def rank_world(config: dict) -> tuple[int, int]:
    """This worker's rank and the number of workers (0, 1 outside Ray)."""
    if not config.get("ray"):
        return 0, 1
    import ray.train

    ctx = ray.train.get_context()
    return ctx.get_world_rank(), ctx.get_world_size()


def prepare(model: nn.Module, config: dict) -> tuple[nn.Module, torch.device]:
    """The module to call in the training step (DDP-wrapped under Ray) and its device.

    The returned module shares parameters with ``model``; keep using ``model``
    for anything that is not the forward pass (max-norm, state dicts).
    """
    if config.get("ray"):
        import ray.train.torch

        return ray.train.torch.prepare_model(model), ray.train.torch.get_device()
    device = torch.device(config.get("device", "cpu"))
    return model.to(device), device


def global_steps(n: int, batch: int, world: int) -> int:
    """Optimiser steps per epoch, the same on every worker.

    Shards differ in size by a row group; a worker stepping once more than the
    others would wait forever in DDP's all-reduce, so all take the minimum.
    """
    steps = max(1, n // batch)
    if world == 1:
        return steps
    import torch.distributed as dist

    t = torch.tensor([steps], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def end_epoch(state: dict, model: nn.Module, score: float, *, best: str, higher: bool) -> bool:
    """Count a finished epoch and keep the model's weights if ``score`` is the best yet.

    The early-stopping bookkeeping of every training loop: ``state["epoch"]``,
    ``state[best]`` (the best score so far; None before the first), ``best_epoch``,
    ``best_model`` (a CPU copy of the weights) and ``bad_epochs`` (epochs since
    the last improvement). Returns whether this epoch improved.
    """
    state["epoch"] += 1
    improved = state[best] is None or (score > state[best] if higher else score < state[best])
    if improved:
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        state |= {best: score, "best_epoch": state["epoch"], "best_model": weights}
    state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
    return improved


def throughput(seconds: float, steps: int, batch: int, world: int) -> dict:
    """An epoch's time and samples per second over all ``world`` workers (for its metrics)."""
    return {"seconds": seconds, "samples_per_s": world * steps * batch / seconds, "workers": world}


def load_state(config: dict) -> dict | None:
    """The state of the last checkpoint, or None for a fresh run."""
    if config.get("ray"):
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            return modelio.load_tree(Path(d) / STATE_FILE)
    path = Path(config["checkpoint_dir"]) / STATE_FILE if config.get("checkpoint_dir") else None
    if path is not None and path.exists():
        return modelio.load_tree(path)
    return None


def save_state(state: dict, metrics: dict, config: dict, rank: int) -> None:
    """Checkpoint ``state`` and report ``metrics`` (every rank must call it, every epoch).

    Without Ray, a line per epoch is logged here (under Ray the driver logs it:
    :func:`_log_epochs`).
    """
    if not config.get("ray"):
        logging.getLogger(__name__).info("%s", _shown(metrics))
        if config.get("checkpoint_dir"):
            modelio.save_tree(Path(config["checkpoint_dir"]) / STATE_FILE, state)
        return
    import ray.train

    # every rank reports (Ray Train's barrier); only rank 0 uploads the state
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory() as d:
        modelio.save_tree(Path(d) / STATE_FILE, state)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def _shown(metrics: dict) -> str:
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
    )


#: Seconds between the driver's looks for new checkpoints (:func:`_log_epochs`).
EPOCH_POLL = 2.0


def _log_epochs(run_dir: Path, stop: threading.Event) -> None:
    """Log a line per new checkpoint of a Ray run, from the driver, until ``stop``.

    The workers' own logs stay in Ray's log files (``log_to_driver=False`` keeps
    their start-up noise out of the user's terminal), so the driver reads each
    epoch's metrics from the checkpoint's card as it appears: a line per epoch
    in a batch log, what a progress bar is on a terminal.
    """
    log = logging.getLogger(__name__)
    seen = {p.parent.name for p in run_dir.glob(f"checkpoint_*/{STATE_FILE}")}
    while not stop.wait(EPOCH_POLL):
        for card in sorted(run_dir.glob(f"checkpoint_*/{STATE_FILE}")):
            if card.parent.name in seen:
                continue
            try:
                tree = json.loads(card.read_text())["tree"]
            except (OSError, ValueError, KeyError):
                continue  # still being written: the next poll reads it
            seen.add(card.parent.name)
            history = tree.get("history") or [{}]
            log.info("%s", _shown(history[-1]) if history[-1] else f"epoch {tree.get('epoch')}")


def _refuse_pickled_checkpoints(run_dir: Path) -> None:
    """A run folder with checkpoints of the old pickle format cannot be resumed.

    They are never loaded (a model file is untrusted input), so say so before
    Ray would fail on them inside a worker.
    """
    old = sorted(run_dir.glob("**/state.pt"))
    if old:
        raise InputError(
            "the run has checkpoints in the old pickle format (state.pt), which are never "
            "loaded: delete the run folder to train from scratch, or train under another name",
            path=old[-1],
        )


def fit(
    loop: Callable[[dict], dict | None],
    config: dict,
    *,
    run_dir: str | Path,
    ray: bool = True,
    workers: int = 2,
    use_gpu: bool = False,
    max_failures: int = 1,
    ray_address: str | None = None,
) -> dict:
    """Run ``loop`` to the end and return its final state.

    Parameters
    ----------
    loop
        The per-worker loop (a module-level function, so Ray can ship it).
    config
        Its config dict (``ray``, ``checkpoint_dir`` and ``device`` are filled in here).
    run_dir
        ``storage_path / name`` of the Ray run; a rerun with the same folder
        resumes from its last checkpoint (without Ray: ``run_dir/local``).
    ray, workers, use_gpu, max_failures, ray_address
        Whether to use Ray Train, how many workers (one CPU, or one GPU each),
        how many retries after a failure, and the cluster (default: a local one).
    """
    run_dir = Path(run_dir).resolve()
    _refuse_pickled_checkpoints(run_dir)
    if not ray:
        device = "cuda" if use_gpu else "cpu"
        return loop(
            config | {"ray": False, "device": device, "checkpoint_dir": str(run_dir / "local")}
        )
    import ray as ray_
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    started = not ray_.is_initialized()
    if started:
        # no address: a new local Ray, never whatever `ray start` last left on this
        # machine (a stale address there would hang the run)
        from jpasbatch.core import logs

        quiet = {} if logs.engine_level is None else {"logging_level": logs.engine_level}
        ray_.init(address=ray_address or "local", log_to_driver=False, **quiet)
    trainer = TorchTrainer(
        loop,
        train_loop_config=config | {"ray": True},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=run_dir.name,
            storage_path=str(run_dir.parent),
            failure_config=FailureConfig(max_failures=max_failures),
            # the newest checkpoint holds everything a loop needs: two are plenty
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    stop = threading.Event()
    watcher = threading.Thread(target=_log_epochs, args=(run_dir, stop), daemon=True)
    watcher.start()
    try:
        result = trainer.fit()
        with result.checkpoint.as_directory() as d:
            return modelio.load_tree(Path(d) / STATE_FILE)
    finally:
        stop.set()
        if started:  # a Ray we started holds memory the later stages of a job need
            ray_.shutdown()
