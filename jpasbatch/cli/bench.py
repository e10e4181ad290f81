"""The ``bench`` sub-command: every stage against its peer, scaling curves, survey projection."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import yaml

from jpasbatch.core.errors import InputError


def _ints(text: str) -> list[int]:
    try:
        return [int(float(x)) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _sizes(text: str) -> tuple[str, list[int]]:
    """``1000,10000`` (every stage) or ``photometry=1000,10000``."""
    key, _, values = text.rpartition("=")
    return key or "*", _ints(values)


def add_bench(sub: argparse._SubParsersAction) -> None:
    from jpasbatch.bench.stage import STAGES

    p = sub.add_parser(
        "bench",
        help="measure every stage against its peer, draw scaling curves, project the survey",
        description="For each stage (" + ", ".join(STAGES) + ") run the stage and its peer "
        "(speclite; brute-force neighbours; the same partitions in process; plain pyarrow "
        "read + write; the training loop without Ray; a naive per-member loop; a plain "
        "torch.nn.Transformer; the bare VAC kernel) on the same inputs at several sizes and "
        "worker counts, several repeats each (median, min, max), with peak memory per "
        "worker. Every answer is checked against the peer's: a stage that differs beyond "
        "its tolerance stops the run (exit status 3) and writes no record.\n\n"
        "Workers are threads of this process for the kernels (photometry, similarity, "
        "committee, transformer, spectral), Dask workers for mocks, ingest and vac (a local "
        "cluster, or --dask-address), Ray Train workers for training (local Ray, or "
        "--ray-address). Strong scaling: the largest size on every worker count; weak "
        "scaling: (largest / most workers) x k items on k workers.\n\n"
        "Writes OUT/records/<stage>.json (machine, versions, engines, command, every "
        "measurement, fits), OUT/bench.json, OUT/report.md and PNGs (throughput vs size and "
        "vs workers, ratio to the peer, each goal of the issues met or not, and the wall "
        "time and memory of the full survey projected on --project-* nodes).",
    )
    p.add_argument("--out", type=Path, help="report folder (required unless --spec gives it)")
    p.add_argument("--spec", type=Path, help="a YAML file of BenchSpec fields; flags override")
    p.add_argument("--records", type=Path, help="folder of the JSON records (default OUT/records)")
    p.add_argument(
        "--stages",
        type=lambda s: [x for x in s.split(",") if x],
        metavar="A,B",
        help=f"stages to run (default all: {','.join(STAGES)})",
    )
    p.add_argument(
        "--preset",
        choices=["tiny", "quick", "full"],
        help="default sizes: tiny (seconds, tests), quick (default), full (the issues' sizes)",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        action="append",
        metavar="[STAGE=]N,N",
        help="sizes overriding the preset, for every stage or for one (repeatable)",
    )
    p.add_argument("--workers", type=_ints, metavar="1,2", help="worker counts (default 1..cores)")
    p.add_argument("--repeats", type=int, help="repeats per point (default 3)")
    p.add_argument(
        "--max-point-seconds",
        type=float,
        help="stop repeating a point once its repeats took this long (default 60)",
    )
    p.add_argument(
        "--no-warmup", action="store_true", help="no untimed first call of each implementation"
    )
    p.add_argument("--dask-address", help="a running Dask scheduler to measure on")
    p.add_argument("--ray-address", help="a running Ray cluster to measure on")
    p.add_argument("--project-nodes", type=int, help="projection: nodes (default 16)")
    p.add_argument("--project-cores", type=int, help="projection: cores per node (default 32)")
    p.add_argument("--project-gpus", type=int, help="projection: GPUs per node (default 0)")
    p.add_argument("--project-memory-gb", type=float, help="projection: GB per node (default 256)")
    p.add_argument(
        "--project-objects", type=int, help="projection: survey objects (default 40,000,000)"
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only redraw the report from the records already in --records / OUT/records",
    )
    p.set_defaults(func=run_bench_command)


def spec_from_args(args: argparse.Namespace):
    """The :class:`~jpasbatch.bench.spec.BenchSpec` of the command line (and --spec file)."""
    from jpasbatch.bench.spec import BenchSpec

    fields = yaml.safe_load(args.spec.read_text()) if args.spec else {}
    fields = fields or {}
    flags = {
        "out": args.out,
        "records": args.records,
        "stages": args.stages,
        "preset": args.preset,
        "workers": args.workers,
        "repeats": args.repeats,
        "max_point_seconds": args.max_point_seconds,
        "dask_address": args.dask_address,
        "ray_address": args.ray_address,
    }
    fields |= {k: v for k, v in flags.items() if v is not None}
    if args.no_warmup:
        fields["warmup"] = False
    if args.sizes:
        fields["sizes"] = dict(args.sizes)
    project = {
        "nodes": args.project_nodes,
        "cores": args.project_cores,
        "gpus": args.project_gpus,
        "memory_gb": args.project_memory_gb,
        "objects": args.project_objects,
    }
    fields["project"] = (fields.get("project") or {}) | {
        k: v for k, v in project.items() if v is not None
    }
    if "out" not in fields:
        raise InputError("give --out DIR (or out: in the --spec file)")
    fields["command"] = _command(args)
    return BenchSpec(**fields)


def _command(args: argparse.Namespace) -> str:
    """The command line as run (``jpasbatch bench ...``), rebuilt from the parsed flags.

    Rebuilt rather than read from ``sys.argv``: ``jpasbatch.cli.main(argv)`` may be
    called from Python, where ``sys.argv`` is someone else's.
    """
    words = ["jpasbatch", "bench"]
    for name, value in sorted(vars(args).items()):
        if name in ("func", "command") or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif name == "sizes":
            for key, sizes in value:
                text = ",".join(map(str, sizes))
                words += [flag, text if key == "*" else f"{key}={text}"]
        elif isinstance(value, list):
            words += [flag, ",".join(map(str, value))]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def run_bench_command(args: argparse.Namespace) -> int:
    from jpasbatch.bench.core import BenchmarkMismatch
    from jpasbatch.bench.report import write_report
    from jpasbatch.bench.runner import run_bench

    spec = spec_from_args(args)
    if args.report_only:
        path = write_report(spec.records_dir, spec.out, spec.project)
        print(f"wrote {path}")
        return 0
    try:
        run_bench(spec)
    except BenchmarkMismatch as exc:
        print(
            f"jpasbatch bench: MISMATCH, no record written for this stage: {exc}", file=sys.stderr
        )
        return 3
    print(f"records: {spec.records_dir}\nreport:  {spec.out / 'report.md'}")
    return 0
