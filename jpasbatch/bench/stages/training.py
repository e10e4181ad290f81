"""A training epoch of the ANN committee on Ray Train against the same loop without Ray."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from jpasbatch.bench.core import BenchmarkMismatch, Outcome
from jpasbatch.bench.stage import Context, Sizes, Stage

_ids = itertools.count()
#: The loop is deterministic: one Ray worker repeats the in-process loss to float precision.
LOSS_RTOL = 1e-3
#: With more workers (data parallel, other shards) the best validation F1 must stay close.
F1_TOLERANCE = 0.05
FILES = 4


class TrainingStage(Stage):
    name = "training"
    title = "Training epoch: ANN committee (8 members x 8 x 200) on Ray Train"
    unit = "training samples"
    issue = 5
    goal = "data-parallel scaling: 2 Ray workers train faster than 1 on 2 cores"
    engine = "ray"
    sizes = Sizes(tiny=(1024, 2048), quick=(8192, 32_768), full=(16_384, 65_536))
    peer_scales = True  # the plain loop gets as many torch threads as Ray has workers
    survey = "training samples per epoch (projected: one epoch over 40 million mocks)"
    warmup = False  # the first epoch of every run is the warm-up (not counted)
    memory = "shard"  # each worker holds its shard of the training set in memory
    ours_label = "Ray Train TorchTrainer, 1 CPU per worker"
    peer_label = "the same loop in this process, no Ray"
    diff_label = "|dF1| (w > 1) or max rel. loss diff (w = 1)"

    def prepare(self, n: int, ctx: Context):
        import pyarrow.parquet as pq

        from jpasbatch.bench.data import labelled_table

        folder = ctx.tmp / f"train-{n}"
        (folder / "train").mkdir(parents=True)
        for k in range(FILES):  # four files: each worker reads its own row groups
            pq.write_table(
                labelled_table(n // FILES, k, "train"), folder / "train" / f"{k}.parquet"
            )
        pq.write_table(labelled_table(max(n // 4, 512), 99, "validation"), folder / "val.parquet")
        return {"folder": folder, "n": FILES * (n // FILES)}

    def _train(self, data, ctx: Context, ray: bool) -> Outcome:
        from jpasbatch.classify.train import TrainSpec, train

        # the first epoch warms up and is not counted; three at least so that data-parallel
        # runs (half the optimiser steps per epoch on two workers) converge too
        epochs = max(3, ctx.repeats + 1)
        folder = data["folder"]
        spec = TrainSpec(
            train=[folder / "train"],
            validation=[folder / "val.parquet"],
            out=folder / "runs",
            name=f"run{next(_ids)}",
            workers=ctx.workers,
            epochs=epochs,
            patience=epochs,
            calibrate=False,
            prior_correction=False,
            # a global batch of 512 (tiny: 64, still enough steps to learn), split over the
            # Ray workers: every run takes the same optimiser steps per epoch and must reach
            # the same validation F1 as the loop without Ray (one process, the whole batch)
            batch_size=(64 if ctx.preset == "tiny" else 512) // (ctx.workers if ray else 1),
            weighting="none",
            ray=ray,
            ray_address=ctx.engines.ray() if ray else None,
        )
        train(spec)
        h = pd.read_csv(spec.run_dir / "history.csv")
        seconds = h["seconds"].to_list()[1:] or h["seconds"].to_list()
        answer = {"loss": h["loss"].to_numpy(), "f1": float(h["val_weighted_f1"].max())}
        return Outcome(answer, seconds=seconds, info={"epochs": len(h)})

    def run(self, data, ctx: Context) -> Outcome:
        return self._train(data, ctx, ray=True)

    def peer(self, data, n: int, ctx: Context) -> Outcome:
        return self._train(data, ctx, ray=False)

    def compare(self, ours: Outcome, peer: Outcome, n: int, workers: int) -> float:
        a, b = ours.answer, peer.answer
        if workers == 1:
            rel = float(np.max(np.abs(a["loss"] - b["loss"]) / np.abs(b["loss"])))
            if not rel <= LOSS_RTOL:
                raise BenchmarkMismatch(
                    f"one Ray worker's losses differ from the loop's by {rel:.1e}"
                )
            return rel
        d = abs(a["f1"] - b["f1"])
        if not d <= F1_TOLERANCE:
            raise BenchmarkMismatch(
                f"{workers} Ray workers reach validation F1 {a['f1']:.3f}, the loop {b['f1']:.3f}"
            )
        return d

    def goal_check(self, rec: dict) -> tuple[bool | None, str]:
        ss = rec.get("strong_scaling")
        if not ss or len(ss["points"]) < 2:
            return None, "one worker count measured"
        one, most = ss["points"][0], ss["points"][-1]
        return most["per_s"] > one["per_s"], (
            f"{most['workers']} workers: {most['per_s']:,.0f} samples/s vs "
            f"{one['per_s']:,.0f} on 1 (speedup {most['speedup']:.2f}) at {ss['n']:,} samples"
        )
