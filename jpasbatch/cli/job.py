"""The ``run`` sub-command: a whole job from one YAML spec."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a job spec: simulate -> ingest -> mocks -> train -> infer -> evaluate",
        description="Runs the stages a job YAML names (see jobs/*.yaml and "
        "schemas/job_spec.schema.json), each with its inputs wired from the earlier ones. "
        "A stage whose parameters and inputs are unchanged since it last finished (recorded "
        "with checksums in WORKDIR/job_state.json) is skipped, so rerunning an interrupted "
        "or edited job only does what is needed. Ends by printing where the VAC, the QSO "
        "target list and the HTML report are.",
    )
    p.add_argument("job", type=Path, help="job spec (YAML)")
    # the job's stages are checked against the job (reading the registry here would
    # load torch for every command)
    p.add_argument(
        "--from", dest="start", metavar="STAGE", help="rerun from this stage on (one of the job's)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    p.add_argument("--workdir", type=Path, help="override the job's workdir")
    p.add_argument("--dask-address", help="a running Dask scheduler (overrides the job)")
    p.add_argument("--ray-address", help="a running Ray cluster (overrides the job)")
    p.set_defaults(func=_run_job)


def _run_job(args: argparse.Namespace) -> int:
    from jpasbatch.pipeline.job import load_job
    from jpasbatch.pipeline.runner import run_job
    from jpasbatch.pipeline.stages import Paths

    job = load_job(args.job)
    if args.workdir:
        job = job.model_copy(update={"workdir": args.workdir})
    res = job.resources
    if args.dask_address:
        res.dask.address, res.dask.slurm = args.dask_address, None
    if args.ray_address:
        res.ray.address = args.ray_address
    run_job(job, start=args.start, dry_run=args.dry_run)
    if args.dry_run:
        return 0
    paths = Paths(job)
    print("\nfinished; outputs:")
    for what, path in (
        ("VAC", paths.vac),
        ("QSO targets", paths.vac / "targets" / "qso_targets.fits"),
        ("report", paths.report),
    ):
        if path.exists():
            print(f"  {what:<12} {path}")
    return 0
