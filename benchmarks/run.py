"""Benchmark runner of the repository: a thin wrapper over ``jpasbatch bench``.

Usage::

    python -m benchmarks.run [--only NAME ...] [--quick | --preset tiny|quick|full]

runs the stages of :mod:`jpasbatch.bench` (all by default, at the ``full``
preset: the sizes the issues' goals name) against their peers, writes one JSON
record per stage into ``benchmarks/results/`` (``<stage>@<device>.json`` on a
GPU machine, beside the CPU ones), regenerates ``benchmarks/RESULTS.md`` and the
report with figures and the full-survey projection in ``docs/bench/`` from
every record there -- no number is typed by hand. A stage whose answers differ
from its peer's beyond tolerance fails loudly (``BenchmarkMismatch``) and
writes no record: a fast wrong stage must not "win".

``--quick`` / ``--preset tiny`` write into a scratch folder (printed) unless
``--results-dir`` is given, so committed records are only replaced by full runs.
``--report-only`` regenerates ``RESULTS.md`` and ``docs/bench/`` from the records.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from jpasbatch.bench.core import BenchmarkMismatch
from jpasbatch.bench.report import write_report
from jpasbatch.bench.runner import run_bench
from jpasbatch.bench.spec import BenchSpec
from jpasbatch.bench.stage import STAGES

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
DOCS_DIR = HERE.parent / "docs" / "bench"


__all__ = ["BenchmarkMismatch", "main"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    known = list(STAGES)
    parser.add_argument(
        "--only",
        nargs="*",
        choices=known,
        metavar="NAME",
        help=f"stages to run (default all): {', '.join(known)}",
    )
    parser.add_argument("--quick", action="store_true", help="the quick preset (minutes)")
    parser.add_argument("--preset", choices=["tiny", "quick", "full"], help="default: full")
    parser.add_argument(
        "--results-dir", type=Path, help="JSON records (default benchmarks/results)"
    )
    parser.add_argument("--out", type=Path, help="report folder (default docs/bench)")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--report-only", action="store_true", help="only regenerate the reports from the records"
    )
    args = parser.parse_args(argv)
    preset = args.preset or ("quick" if args.quick else "full")
    results = args.results_dir
    if results is None:
        scratch = Path(tempfile.gettempdir()) / f"jpasbatch-bench-{preset}"
        results = RESULTS_DIR if preset == "full" else scratch / "results"
    out = args.out or (DOCS_DIR if results == RESULTS_DIR else results.parent / "report")
    stages = args.only or list(STAGES)
    fields = {
        "out": out,
        "records": results,
        "stages": stages,
        "preset": preset,
        "repeats": args.repeats,
        "command": shlex.join(["python", "-m", "benchmarks.run", *argv]),
    }
    if args.workers:
        fields["workers"] = args.workers
    spec = BenchSpec(**fields)
    results_md = results.parent / "RESULTS.md"
    if not args.report_only:
        run_bench(spec, results_md=results_md)  # the records, the report and RESULTS.md
    else:
        write_report(results, out, spec.project, results_md=results_md)
    print(f"records: {results}\nreport: {out / 'report.md'}\nwrote {results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
