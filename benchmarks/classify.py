"""Classifier benchmarks: committee inference and Ray Train training throughput."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _member_networks(model):
    """The committee as K separate ``nn.Sequential`` networks (the naive peer)."""
    import torch
    from torch import nn

    nets = []
    for k in range(model.members):
        layers = []
        for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k, 0])
            layers += [lin, nn.ReLU()] if i < len(model.weights) - 1 else [lin]
        nets.append(nn.Sequential(*layers).eval())
    return nets


def bench_committee(quick: bool) -> dict:
    """8-member committee inference on 1e6 objects: vectorised (fp32, bf16) vs a member loop."""
    import torch

    from benchmarks.run import BenchmarkMismatch, summary_of, timed
    from jpasbatch.classify.classifier import Classifier
    from jpasbatch.classify.features import FeatureScaler
    from jpasbatch.classify.model import CommitteeMLP

    n = 20_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    flux = rng.lognormal(0, 0.5, (n, 60)).astype(np.float32)
    scaler = FeatureScaler.fit(flux)
    clf = Classifier(CommitteeMLP(scaler.n_features, seed=0), scaler)
    nets = _member_networks(clf.model)

    def naive():
        x, _ = scaler.transform(flux)
        with torch.no_grad():
            members = [
                torch.cat(
                    [
                        torch.softmax(net(torch.from_numpy(x[s : s + 65536])), -1)
                        for s in range(0, n, 65536)
                    ]
                )
                for net in nets
            ]
        p = np.median(torch.stack(members).double().numpy(), axis=0)
        return p / p.sum(1, keepdims=True)

    t32, (p32, _) = timed(lambda: clf.predict_proba(flux), 1)
    t16, (p16, _) = timed(lambda: clf.predict_proba(flux, dtype=torch.bfloat16), 1)
    tnv, pnv = timed(naive, 1)
    diff32 = float(np.max(np.abs(p32 - pnv)))
    if diff32 > 1e-4:
        raise BenchmarkMismatch(f"vectorised committee differs from the member loop by {diff32}")
    agree16 = float(np.mean(p16.argmax(1) == p32.argmax(1)))
    ours, bf16, peer = summary_of(t32, n), summary_of(t16, n), summary_of(tnv, n)
    return {
        "name": "committee",
        "title": f"ANN committee inference: 8 members x (8 x 200), {n:,} objects, "
        f"{torch.get_num_threads()} threads",
        "goal": "at least 20,000 objects/s on 2 cores",
        "goal_met": bool(max(ours["per_s"], bf16["per_s"]) >= 20_000),
        "rows": [
            {
                "what": "vectorised committee, fp32 (batched matmul)",
                **ours,
                "max_abs_dmag_vs_peer": diff32,
            },
            {
                "what": "vectorised committee, bf16 matmuls",
                **bf16,
                "max_abs_dmag_vs_peer": float(np.max(np.abs(p16 - pnv))),
            },
            {"what": "loop over 8 nn.Sequential members, fp32 (peer)", **peer},
        ],
        "ratio_to_peer": ours["per_s"] / peer["per_s"],
        "bf16_ratio_to_peer": bf16["per_s"] / peer["per_s"],
        "bf16_argmax_agreement": agree16,
    }


def bench_training(quick: bool) -> dict:
    """Committee training throughput on Ray Train with 1 and 2 CPU workers."""
    import pandas as pd
    import pyarrow.parquet as pq
    import ray

    from jpasbatch.classify.train import TrainSpec, train

    n = 4_000 if quick else 40_000
    tmp = Path(tempfile.mkdtemp(prefix="jpasbatch-bench-train-"))
    try:
        for k in range(4):  # four files: each worker reads its own row groups
            pq.write_table(_labelled_table(n // 4, k), tmp / f"part-{k}.parquet")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        rows, rates = [], {}
        for workers in (1, 2):
            spec = TrainSpec(
                train=[tmp],
                out=tmp / "runs",
                name=f"w{workers}",
                workers=workers,
                epochs=3,
                patience=3,
                calibrate=False,
                batch_size=512,
            )
            t0 = time.perf_counter()
            train(spec)
            wall = time.perf_counter() - t0
            h = pd.read_csv(tmp / "runs" / f"w{workers}" / "history.csv")
            rate = float(h["samples_per_s"].iloc[1:].median())  # epoch 1 includes warm-up
            rates[workers] = rate
            rows.append(
                {
                    "what": f"{workers} Ray worker(s), 1 CPU each: training samples",
                    "n": int(0.6 * n) * 3,
                    "repeats": 3,
                    "median_s": wall / 3,
                    "min_s": float(h["seconds"].min()),
                    "max_s": float(h["seconds"].max()),
                    "per_s": rate,
                }
            )
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "name": "training",
        "title": "ANN committee training (8 members x 8 x 200) on Ray Train, 1 vs 2 CPU workers",
        "goal": "2 workers faster than 1 (data-parallel scaling on 2 cores)",
        "goal_met": bool(rates[2] > rates[1]),
        "rows": rows,
        "ratio_to_peer": rates[2] / rates[1],
    }


def _labelled_table(n: int, seed: int):
    """Random MOCK-schema rows (throughput does not depend on what the data mean)."""
    import pyarrow as pa

    from jpasbatch.catalog.schemas import BANDS, CLASSES, MOCK

    rng = np.random.default_rng(seed)
    flux = rng.lognormal(0, 0.5, (n, 60))
    cols = {"OBJECT_ID": np.arange(n, dtype=np.int64) + seed * n}
    cols |= {f"FLUX_{b}": flux[:, j].astype(np.float32) for j, b in enumerate(BANDS)}
    cols |= {f"FLUX_RELERR_{b}": np.full(n, 0.1, np.float32) for b in BANDS}
    cols |= {
        "CLASS": rng.choice(CLASSES, n),
        "Z": np.zeros(n),
        "MAG_R": np.full(n, 20, np.float32),
        "WEIGHT": np.ones(n),
        "SPLIT": rng.choice(["train", "validation", "test"], n, p=[0.6, 0.2, 0.2]),
    }
    return pa.table(cols, schema=MOCK)
