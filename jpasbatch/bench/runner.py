"""Runs stages and their peers over sizes and worker counts, and writes the records.

For each stage, with sizes ``S`` (largest ``L``) and worker counts ``W`` (largest ``w``):

* size sweep: every size on one worker and on ``w`` workers (throughput vs size);
* strong scaling: ``L`` on every worker count;
* weak scaling: ``(L // w) * k`` items on ``k`` workers for every ``k`` in ``W``;
* the peer at every size measured on one worker (and at ``L`` also on ``w``
  where the peer uses workers), and every answer of the stage is compared with the peer's answer on
  the same inputs -- a mismatch beyond the stage's tolerance raises
  :class:`~jpasbatch.bench.core.BenchmarkMismatch` and no record is written;
* the stage's variants (other precisions, backends) at ``(L, w)``.

A point is repeated ``repeats`` times (fewer once its repeats took
``max_point_seconds``); the record keeps median, min and max.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from jpasbatch.bench import scaling
from jpasbatch.bench.core import (
    BenchmarkMismatch,
    Outcome,
    device_name,
    machine,
    summary_of,
    versions,
)
from jpasbatch.bench.engines import BenchEngines
from jpasbatch.bench.memory import PeakMemory
from jpasbatch.bench.spec import BenchSpec
from jpasbatch.bench.stage import STAGES, Context, Stage, get_stage, remove, scratch
from jpasbatch.core import atomic

GB = 1e9
#: Command-line text of Ray Train worker processes (how their memory is found).
RAY_WORKER = "RayTrainWorker"


def plan(sizes: list[int], workers: list[int]) -> tuple[dict[int, list[int]], int]:
    """Worker counts to measure at each size, and the weak-scaling base size."""
    big, wmax = max(sizes), max(workers)
    points: dict[int, set[int]] = {n: {1, wmax} for n in sizes}
    points[big] |= set(workers)
    base = max(1, big // wmax)
    for w in workers:
        points.setdefault(base * w, set()).add(w)
    return {n: sorted(ws) for n, ws in sorted(points.items())}, base


def stage_sizes(stage: Stage, spec: BenchSpec) -> list[int]:
    sizes = spec.sizes.get(stage.name) or spec.sizes.get("*") or getattr(stage.sizes, spec.preset)
    return sorted(set(sizes))


def _memory_keys(stage: Stage, engines: BenchEngines, workers: int, peer: bool):
    if peer or stage.engine == "threads":
        return "pids", [os.getpid()]
    if stage.engine == "dask":
        return "pids", engines.dask_memory_keys(workers)
    return "match", RAY_WORKER


def measure(
    fn, stage: Stage, ctx: Context, n: int, label: str, impl: str, spec: BenchSpec, peer=False
) -> tuple[dict, Outcome]:
    """Repeat ``fn(ctx)``; the row of the record, and the last outcome."""
    times, peaks, totals, out = [], [], [], None
    remote = ctx.engines.dask_remote_memory() if stage.engine == "dask" and not peer else None
    spent = 0.0
    for _ in range(spec.repeats):
        with PeakMemory(remote=remote) as mem:
            t0 = time.perf_counter()
            if stage.engine == "threads" or (peer and stage.peer_scales):
                with ctx.engines.threads(ctx.workers):
                    out = fn(ctx)
            else:
                out = fn(ctx)
            wall = time.perf_counter() - t0
        kind, keys = _memory_keys(stage, ctx.engines, ctx.workers, peer)
        per = mem.of(keys) if kind == "pids" else mem.matching(keys)
        if remote is not None:
            per = mem.of(ctx.engines.dask_memory_keys(ctx.workers))
        peaks.append(max(per) if per else None)
        totals.append(mem.peak)
        spent += wall
        if out.seconds is not None:  # the stage timed its own repeats (epochs)
            times = list(out.seconds)
            break
        times.append(wall)
        if spent > spec.max_point_seconds:
            break
    seen = [p for p in peaks if p is not None]
    row = {
        "what": label,
        "impl": impl,
        "workers": ctx.workers,
        **summary_of(times, n),
        "peak_memory_per_worker_gb": max(seen) / GB if seen else None,
        "peak_memory_total_gb": max(totals) / GB,
    }
    if out.info:
        row["info"] = out.info
    return row, out


def run_stage(stage: Stage, spec: BenchSpec, engines: BenchEngines) -> dict:
    """Measure one stage against its peer; returns its record (raises on a mismatch)."""
    sizes = stage_sizes(stage, spec)
    points, base = plan(sizes, spec.workers)
    big, wmax = max(sizes), max(spec.workers)
    tmp = scratch(stage.name)
    rows: list[dict] = []
    extra: dict = {}
    cache: dict = {}
    n_calls = sum(len(ws) + 1 + (stage.peer_scales and n == big) for n, ws in points.items())
    bar = tqdm(total=n_calls, desc=f"bench {stage.name}", unit="point", disable=None)

    def context(w: int) -> Context:
        return Context(w, engines, tmp, spec.preset, spec.repeats, cache)

    warm: set[str] = set()

    def point(fn, w: int, n: int, label: str, impl: str, peer: bool = False):
        if spec.warmup and stage.warmup and impl not in warm:
            fn(context(w))  # untimed: imports, kernel selection, worker start-up
        warm.add(impl)
        return measure(fn, stage, context(w), n, label, impl, spec, peer=peer)

    try:
        for n, ws in points.items():
            data = stage.prepare(n, context(1))
            m = min(n, stage.peer_cap or n)
            peer_ws = [1, wmax] if stage.peer_scales and n == big and wmax > 1 else [1]
            peers = {}
            for w in peer_ws:
                bar.set_postfix_str(f"peer n={m:,} w={w}")
                fn = lambda c, d=data, m=m: stage.peer(d, m, c)  # noqa: E731
                row, peers[w] = point(fn, w, m, f"{stage.peer_label} (peer)", "peer", True)
                rows.append(row)
                bar.update()
            for w in ws:
                bar.set_postfix_str(f"n={n:,} w={w}")
                row, out = point(lambda c, d=data: stage.run(d, c), w, n, stage.ours_label, "ours")
                row["max_abs_diff_vs_peer"] = stage.compare(out, peers.get(w, peers[1]), m, w)
                row["peer_n"] = m
                rows.append(row)
                bar.update()
            if n == big:
                warm.update(stage.variants())  # a warm-up at the largest size would cost too much
                for label, (fn, check) in stage.variants().items():
                    row, out = point(lambda c, f=fn, d=data: f(d, c), wmax, n, label, label)
                    row["impl"] = "variant"
                    row["max_abs_diff_vs_peer"], more = check(out, peers.get(wmax, peers[1]), m)
                    extra |= more
                    rows.append(row)
            stage.cleanup(data)
    finally:
        bar.close()
        remove(tmp)
    rec = {
        "name": stage.name,
        "title": stage.title,
        "unit": stage.unit,
        "issue": stage.issue,
        "goal": stage.goal,
        "engine": stage.engine,
        "memory": stage.memory,
        "survey": stage.survey,
        "pipeline": stage.pipeline,
        "diff_label": stage.diff_label,
        "device": device_name(),
        "sizes": sizes,
        "workers": spec.workers,
        "rows": rows,
        **extra,
    }
    scaling.analyse(rec, base)
    headline(rec, big, wmax)
    rec["goal_met"], rec["goal_note"] = stage.goal_check(rec)
    return rec


def headline(rec: dict, big: int, wmax: int) -> None:
    """``ratio_to_peer`` at (largest size, most workers) and the ratio at every point.

    Each point's ratio is to the peer on the same inputs: with as many workers
    where the peer uses workers and was measured so (the largest size), else to
    the peer on one worker.
    """
    ratios = []
    for r in rec["rows"]:
        if r["impl"] != "ours":
            continue
        p = scaling.point(rec, "peer", r["peer_n"], r["workers"]) or scaling.point(
            rec, "peer", r["peer_n"], 1
        )
        ratios.append(
            {
                "n": r["n"],
                "workers": r["workers"],
                "peer_workers": p["workers"],
                "ratio": r["per_s"] / p["per_s"],
            }
        )
    rec["ratios"] = ratios
    top = next(x for x in ratios if x["n"] == big and x["workers"] == wmax)
    rec["ratio_to_peer"], rec["ratio_peer_workers"] = top["ratio"], top["peer_workers"]


def record_name(rec: dict) -> str:
    """File name of a stage record: ``<stage>.json`` on CPU, ``<stage>@<device>.json`` else."""
    dev = rec.get("device", "cpu")
    if dev == "cpu":
        return f"{rec['name']}.json"
    slug = "".join(c if c.isalnum() else "-" for c in dev).strip("-").lower()
    return f"{rec['name']}@{slug}.json"


def write_json(path: Path, obj: dict) -> Path:
    """Atomic JSON write."""
    return atomic.write_json(path, obj, default=str)


def run_bench(spec: BenchSpec, *, results_md: Path | None = None, progress_print=print) -> dict:
    """Run ``spec``: each stage's record into ``spec.records_dir``, then the report.

    Returns the run record (also ``spec.out / bench.json``). With ``results_md``
    the report's text is also written there (``benchmarks/RESULTS.md``).
    """
    from jpasbatch.bench.report import write_report

    names = spec.stages or list(STAGES)
    stages = [get_stage(n) for n in names]  # unknown names fail before any work
    command = spec.command or shlex.join(["jpasbatch", "bench", *sys.argv[1:]])
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = {"machine": machine(), "versions": versions(), "command": command, "created": created}
    records = {}
    with BenchEngines(max(spec.workers), spec.dask_address, spec.ray_address) as engines:
        for stage in stages:
            progress_print(f"bench {stage.name}: {stage.title}")
            t0 = time.perf_counter()
            if stage.engine == "dask":
                engines.restart_local()
            rec = run_stage(stage, spec, engines)
            rec |= info | {
                "engines": engines.describe({stage.engine}),
                "preset": spec.preset,
                "stage_seconds": time.perf_counter() - t0,
            }
            write_json(spec.records_dir / record_name(rec), rec)
            records[stage.name] = rec
            met = {True: "met", False: "NOT met", None: "not measurable here"}[rec["goal_met"]]
            progress_print(f"  ratio to peer {rec['ratio_to_peer']:.3g}x; goal {met}")
    run = info | {"spec": json.loads(spec.model_dump_json()), "stages": sorted(records)}
    write_json(spec.out / "bench.json", run)
    write_report(spec.records_dir, spec.out, spec.project, results_md=results_md)
    return run


__all__ = ["BenchmarkMismatch", "plan", "run_bench", "run_stage"]
