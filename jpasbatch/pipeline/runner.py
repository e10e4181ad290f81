"""The job runner: simulate -> ingest -> mocks -> train -> foundation -> infer -> evaluate.

Each stage is the library function its command calls, with its inputs wired
from earlier stages (see :mod:`jpasbatch.pipeline.stages`). Before a stage runs, its
*fingerprint* is computed: a hash of its parameters, of the package code and of
its inputs, which are either earlier stages' fingerprints or, for files from
outside the job, their SHA-256 checksums. ``WORKDIR/job_state.json`` records
the fingerprint of every finished stage; a stage whose fingerprint is unchanged
and whose outputs exist is skipped. Changing a parameter reruns that stage and,
through the fingerprints, everything downstream of it. ``start`` forces a stage
and those after it to run; ``dry_run`` prints the plan and runs nothing.

The state also records the stage being run (``running``, with its fingerprint). A
run killed in that stage leaves it there, and the next run of the same stage with
the same fingerprint *resumes* it (ingest: its validated chunks; inference: its
finished partitions) instead of starting it over: the same fingerprint means the
same code, parameters and inputs, which is what those resumes require.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jpasbatch.core.errors import JpasBatchError
from jpasbatch.core.provenance import file_sha256
from jpasbatch.distribute.engines import Engines
from jpasbatch.pipeline.stages import STAGES, JobSpec, Paths
from jpasbatch.pipeline.state import read_state, write_state

log = logging.getLogger(__name__)


@dataclass
class StagePlan:
    """What the runner will do with one stage, and why."""

    stage: str
    action: str  # "run" or "skip"
    reason: str
    fingerprint: str
    outputs: dict[str, str] = field(default_factory=dict)
    resume: bool = False  # an interrupted run of this stage, same fingerprint: keep its work

    def line(self) -> str:
        return f"{self.stage:<9} {self.action:<5} {self.reason}"


# --------------------------------------------------------------------------- planning
def plan(job: JobSpec, *, start: str | None = None, state: dict | None = None) -> list[StagePlan]:
    """The fingerprint and the run / skip decision of every stage of ``job``.

    ``state`` is the job's recorded state (read from the workdir when not given);
    its ``checksums`` are refreshed to the input files hashed here.
    """
    if start is not None and start not in job.stages():
        raise JpasBatchError(f"--from {start}: the job's stages are {', '.join(job.stages())}")
    paths = Paths(job)
    state = read_state(paths.workdir) if state is None else state
    known, state["checksums"] = state.get("checksums", {}), {}
    prints: dict[str, str] = {}
    plans = []
    forced = False
    for stage in job.stages():
        forced = forced or stage == start
        fp = _fingerprint(stage, job, paths, prints, known, state["checksums"])
        prints[stage] = fp
        outputs = {k: str(v) for k, v in STAGES[stage].outputs(paths).items()}
        done = state.get("stages", {}).get(stage, {})
        resume = not forced and state.get("running") == {"stage": stage, "fingerprint": fp}
        if forced:
            action, reason = "run", f"--from {start}"
        elif resume:
            action, reason = "run", "interrupted: resumes its finished parts"
        elif done.get("fingerprint") != fp:
            action = "run"
            reason = "never run" if not done else "inputs, parameters or code changed"
        elif not all(Path(p).exists() for p in outputs.values()):
            action, reason = "run", "outputs missing"
        else:
            action, reason = "skip", f"unchanged since {done.get('finished', '?')}"
        plans.append(StagePlan(stage, action, reason, fp, outputs, resume))
    return plans


@functools.cache
def code_hash() -> str:
    """SHA-256 of the package's source (every ``jpasbatch/**/*.py``, by relative path).

    Part of every stage's fingerprint: an output is reused only when the same code
    made it, so a changed kernel reruns the stages it may have changed (and, through
    the chained fingerprints, those downstream). Data files are covered by the
    models' and inputs' own checksums.
    """
    root = Path(__file__).resolve().parents[1]  # the package, not this folder
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _fingerprint(
    stage: str, job: JobSpec, paths: Paths, prints: dict, known: dict, checksums: dict
) -> str:
    section = getattr(job, stage)
    upstream = STAGES[stage].upstream(job)
    external = STAGES[stage].inputs(job, paths)
    blob = {
        "stage": stage,
        "code": code_hash(),
        "parameters": section.model_dump(mode="json"),
        "upstream": {s: prints[s] for s in upstream if s in prints},
        "external": {str(p): _checksum(p, known, checksums) for p in external},
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _checksum(path: Path, known: dict, checksums: dict) -> str:
    """SHA-256 of a file or folder; a file's hash is reused from ``known`` (the last
    run's) while its (path, size, mtime) is unchanged, and recorded in ``checksums``."""
    path = Path(path)
    if not path.exists():
        raise JpasBatchError(f"input {path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if key not in checksums:
            checksums[key] = known[key] if key in known else file_sha256(f)
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}={checksums[key]}".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- running
def run_job(
    job: JobSpec,
    *,
    start: str | None = None,
    dry_run: bool = False,
    progress: bool = True,
    echo=None,
) -> list[StagePlan]:
    """Run ``job`` (or, with ``dry_run``, only print its plan); returns the plan.

    ``echo`` receives the plan and the stage lines: by default stdout for a dry
    run (the plan is its result) and the ``jpasbatch`` log otherwise.
    """
    echo = echo or (print if dry_run else log.info)

    paths = Paths(job)
    state = read_state(paths.workdir)
    plans = plan(job, start=start, state=state)
    echo(f"job {job.name!r} in {job.workdir}:")
    for p in plans:
        echo("  " + p.line())
    if dry_run:
        return plans
    write_state(paths.workdir, state)  # the input checksums, before hours of work
    with Engines(job.resources) as engines:
        for p in plans:
            if p.action == "skip":
                continue
            echo(f"== {p.stage}")
            # left in the state if this run is killed: the next one resumes the stage
            state["running"] = {"stage": p.stage, "fingerprint": p.fingerprint}
            write_state(paths.workdir, state)
            t0 = time.perf_counter()
            STAGES[p.stage].run(job, paths, engines, progress, p.resume)
            seconds = time.perf_counter() - t0
            peak = peak_rss_gb(engines)
            state.setdefault("stages", {})[p.stage] = {
                "fingerprint": p.fingerprint,
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(seconds, 1),
                "peak_rss_gb": peak,
                "outputs": p.outputs,
            }
            del state["running"]
            write_state(paths.workdir, state)
            echo(f"   {p.stage} done in {seconds:.0f} s; {_peak_text(peak)}")
    return plans


def peak_rss_gb(engines) -> dict:
    """Peak resident memory (GB) of the driver and of every Dask worker process.

    ``getrusage(RUSAGE_SELF).ru_maxrss``: each process's peak over its *lifetime*,
    not over the last stage (no per-stage reset exists); a stage's figure is the
    largest of that stage and those before it in the same run, which bounds the
    stage's own peak from above. A worker restarted by its nanny starts again from
    zero. Ray Train workers are not covered. Read at a stage's end, after its
    tasks finished, so a worker killed in the stage is missing, not wrong.

    Returns
    -------
    dict
        ``{"driver": GB, "workers": {worker address: GB}}``; ``workers`` is empty
        when no stage of this run has used Dask (none is started to measure).
    """
    import resource
    import sys

    # ru_maxrss is in kilobytes on Linux, bytes on macOS
    unit = 1 if sys.platform == "darwin" else 1024

    def gb(usage) -> float:
        return round(usage.ru_maxrss * unit / 1e9, 3)

    workers = {}
    if engines.dask_started:
        # resource.getrusage itself is sent, not a function of this package: a worker
        # need not import jpasbatch to answer
        found = engines.dask.run(resource.getrusage, resource.RUSAGE_SELF)
        workers = {addr: gb(usage) for addr, usage in sorted(found.items())}
    return {"driver": gb(resource.getrusage(resource.RUSAGE_SELF)), "workers": workers}


def _peak_text(peak: dict) -> str:
    workers = ", ".join(f"{v:.2f}" for v in peak["workers"].values())
    text = f"peak RSS so far (process lifetime): driver {peak['driver']:.2f} GB"
    return text + (f", Dask workers {workers} GB" if workers else "")
