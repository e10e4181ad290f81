"""The job runner: simulate -> ingest -> mocks -> train -> foundation -> infer -> evaluate.

Each stage is the library function its command calls, with its inputs wired
from earlier stages (see :mod:`jpasbatch.job`). Before a stage runs, its
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

from jpasbatch import atomic
from jpasbatch.errors import JpasBatchError
from jpasbatch.job import JobSpec
from jpasbatch.jobspecs import STAGES
from jpasbatch.provenance import file_sha256

log = logging.getLogger(__name__)

STATE = "job_state.json"


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


class Paths:
    """Where a job's stages write (all under the workdir) or read (explicit inputs)."""

    def __init__(self, job: JobSpec) -> None:
        w = job.workdir
        self.job = job
        self.workdir = w
        self.sim = w / "sim"
        self.catalogue = w / "catalogue"
        self.mocks_dir = w / "mocks"
        self.mocks = w / "mocks" / "mocks"
        self.runs = w / "runs"
        self.vac = w / "vac"
        self.evaluation = w / "evaluation"
        self.report = w / "report.html"

    @property
    def trained_model(self) -> Path:
        """What the train stage writes."""
        train = self.job.train
        return self.runs / train.name / ("forest.json" if train.model == "forest" else "model.json")

    @property
    def trained_foundation(self) -> Path:
        """What the foundation stage writes."""
        return self.runs / self.job.foundation.name / "model.json"

    @property
    def foundation(self) -> Path | None:
        """The foundation model inference uses: ``infer.foundation``, else the job's."""
        job = self.job
        if job.infer is not None and job.infer.foundation is not None:
            return job.infer.foundation
        return self.trained_foundation if job.foundation is not None else None

    @property
    def model(self) -> Path:
        """The classifier the later stages use: ``infer.model``, else the trained one,
        else (no train stage) the one shipped with the package, as ``jpasbatch infer``
        without ``--model``.

        Raises
        ------
        InputError
            If the shipped classifier is needed and missing or changed
            (:func:`jpasbatch.defaults.default_model`).
        """
        job = self.job
        if job.infer is not None and job.infer.model is not None:
            return job.infer.model
        if job.train is None:
            from jpasbatch import defaults

            return defaults.default_model()
        return self.trained_model

    @property
    def infer_catalogue(self) -> Path:
        job = self.job
        if job.infer is not None and job.infer.catalogue is not None:
            return job.infer.catalogue
        if job.ingest is None:
            raise JpasBatchError("nothing to infer on: add an ingest stage or set infer.catalogue")
        return self.catalogue

    def outputs(self, stage: str) -> dict[str, Path]:
        job = self.job
        return {
            "simulate": {"catalogue": self.sim / "catalogue", "truth": self.sim / "truth"},
            "ingest": {"catalogue": self.catalogue / "ingest_summary.json"},
            "mocks": {"mocks": self.mocks / "_properties.json"},
            "train": {"model": self.trained_model} if job.train else {},
            "foundation": {"model": self.trained_foundation} if job.foundation else {},
            "infer": {"vac": self.vac / "vac_summary.json", "targets": self.vac / "targets"},
            "evaluate": {"report": self.report},
        }[stage]


# --------------------------------------------------------------------------- planning
def plan(job: JobSpec, *, start: str | None = None, state: dict | None = None) -> list[StagePlan]:
    """The fingerprint and the run / skip decision of every stage of ``job``.

    ``state`` is the job's recorded state (read from the workdir when not given);
    its ``checksums`` are refreshed to the input files hashed here.
    """
    if start is not None and start not in job.stages():
        raise JpasBatchError(f"--from {start}: the job's stages are {', '.join(job.stages())}")
    paths = Paths(job)
    state = _read_state(paths.workdir) if state is None else state
    known, state["checksums"] = state.get("checksums", {}), {}
    prints: dict[str, str] = {}
    plans = []
    forced = False
    for stage in job.stages():
        forced = forced or stage == start
        fp = _fingerprint(stage, job, paths, prints, known, state["checksums"])
        prints[stage] = fp
        outputs = {k: str(v) for k, v in paths.outputs(stage).items()}
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
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _fingerprint(
    stage: str, job: JobSpec, paths: Paths, prints: dict, known: dict, checksums: dict
) -> str:
    section = getattr(job, stage)
    upstream = {
        "simulate": [],
        "ingest": ["simulate"] if job.ingest and job.ingest.inputs is None else [],
        "mocks": ["ingest", "simulate"],
        "train": ["mocks"] if job.train and job.train.train is None else [],
        "foundation": ["mocks"] if job.foundation and job.foundation.train is None else [],
        "infer": ["train", "foundation", "ingest"],
        "evaluate": ["mocks", "train", "foundation", "infer", "simulate"],
    }[stage]
    external: list[Path] = []
    if stage == "ingest" and job.ingest.inputs is not None:
        external = expand(job.ingest.inputs)
    if stage in ("train", "foundation") and section.train is not None:
        external = list(section.train)
    if stage == "infer":
        if job.infer.catalogue is not None:
            external.append(job.infer.catalogue)
        if job.infer.model is not None or job.train is None:
            # a given model or the shipped one: its files' checksums, so a republished
            # default model reruns the VAC (the code hash covers only the .py files)
            external.append(paths.model)
        if job.infer.foundation is not None:
            external.append(job.infer.foundation)
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


def expand(patterns: list[Path]) -> list[Path]:
    """Input paths with shell-style globs expanded (a pattern matching nothing is an error)."""
    import glob

    files: list[Path] = []
    for pattern in map(str, patterns):
        if glob.has_magic(pattern):
            found = sorted(glob.glob(pattern))
            if not found:
                raise JpasBatchError(f"no input file matches {pattern}")
            files += map(Path, found)
        else:
            files.append(Path(pattern))
    return files


def _read_state(workdir: Path) -> dict:
    path = workdir / STATE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_state(workdir: Path, state: dict) -> None:
    atomic.write_json(workdir / STATE, state)


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
    from jpasbatch.engines import Engines

    echo = echo or (print if dry_run else log.info)

    paths = Paths(job)
    state = _read_state(paths.workdir)
    plans = plan(job, start=start, state=state)
    echo(f"job {job.name!r} in {job.workdir}:")
    for p in plans:
        echo("  " + p.line())
    if dry_run:
        return plans
    _write_state(paths.workdir, state)  # the input checksums, before hours of work
    with Engines(job.resources) as engines:
        for p in plans:
            if p.action == "skip":
                continue
            echo(f"== {p.stage}")
            # left in the state if this run is killed: the next one resumes the stage
            state["running"] = {"stage": p.stage, "fingerprint": p.fingerprint}
            _write_state(paths.workdir, state)
            t0 = time.perf_counter()
            _STAGE_FUNCS[p.stage](job, paths, engines, progress, p.resume)
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
            _write_state(paths.workdir, state)
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


def _simulate(job: JobSpec, paths: Paths, engines, progress: bool, resume: bool) -> None:
    from jpasbatch.sim.emulator import simulate

    simulate(paths.sim, job.simulate, client=engines.dask)


def _ingest(job: JobSpec, paths: Paths, engines, progress: bool, resume: bool) -> None:
    from jpasbatch.catalog.ingest import ingest

    spec = job.ingest
    inputs = (
        expand(spec.inputs) if spec.inputs else sorted((paths.sim / "catalogue").glob("*.parquet"))
    )
    summary = ingest(
        inputs,
        paths.catalogue,
        cuts=spec.cuts,
        max_rows_per_partition=spec.max_rows_per_partition,
        chunk_rows=spec.chunk_rows,
        resume=resume,
        client=engines.dask,
        progress=progress,
    )
    log.info(summary.to_text())


def _mocks(job: JobSpec, paths: Paths, engines, progress: bool, resume: bool) -> None:
    from jpasbatch.mocks.pipeline import MocksConfig, error_model_report, make_mocks
    from jpasbatch.mocks.testsets import build_test_sets

    spec = job.mocks
    config = MocksConfig(**spec.model_dump(exclude={"report"}))
    observed = paths.catalogue if job.ingest else None
    make_mocks(paths.mocks, config, observed=observed, client=engines.dask)
    if job.simulate:
        build_test_sets(paths.sim, paths.mocks_dir, seed=config.seed)
    if spec.report and observed is not None:
        truth = paths.sim / "truth" if job.simulate else None
        error_model_report(paths.mocks_dir / "report", observed, config, truth=truth)


def _ray_fields(job: JobSpec) -> dict:
    """A training spec's Ray fields, from the job's ``resources.ray``."""
    ray = job.resources.ray
    return {"workers": ray.workers, "use_gpu": ray.use_gpu, "max_failures": ray.max_failures,
            "ray_address": ray.address}  # fmt: skip


def _train(job: JobSpec, paths: Paths, engines, progress: bool, resume: bool) -> None:
    from jpasbatch.classify.train import TrainSpec, train

    fields = job.train.model_dump(exclude={"train", "out"}) | _ray_fields(job)
    spec = TrainSpec(train=job.train.train or [paths.mocks], out=paths.runs, **fields)
    log.info(f"model: {train(spec)}")


def _foundation(job: JobSpec, paths: Paths, engines, progress: bool, resume: bool) -> None:
    from jpasbatch.foundation.train import FoundationSpec, train

    fields = job.foundation.model_dump(exclude={"train", "out"}) | _ray_fields(job)
    spec = FoundationSpec(train=job.foundation.train or [paths.mocks], out=paths.runs, **fields)
    log.info(f"foundation model: {train(spec)}")


def _infer(job: JobSpec, paths: Paths, engines, progress: bool, resume: bool) -> None:
    from jpasbatch.vac.infer import InferSpec, infer
    from jpasbatch.vac.targets import write_targets

    spec = job.infer
    infer_spec = InferSpec(
        catalogue=paths.infer_catalogue,
        model=paths.model,
        foundation=paths.foundation,
        out=paths.vac,
        resume=resume,
        batch_size=spec.batch_size,
        rows_per_partition=spec.rows_per_partition,
        dtype=spec.dtype,
        templates=spec.templates,
        class_source=spec.class_source,
        z_source=spec.z_source,
        gpus=job.resources.gpus,
    )
    summary = infer(infer_spec, client=None if job.resources.gpus else engines.dask,
                    progress=progress)  # fmt: skip
    targets = write_targets(
        paths.vac, threshold=spec.targets.p_qso, mag_limit=spec.targets.mag_limit
    )
    log.info(f"VAC: {summary['rows_vac']:,} rows, {summary['rows_rejected']:,} rejected; "
          f"targets: {targets['qso_targets']}")  # fmt: skip


def _evaluate(job: JobSpec, paths: Paths, engines, progress: bool, resume: bool) -> None:
    from jpasbatch.report import job_report

    job_report(job, paths)


_STAGE_FUNCS = {
    "simulate": _simulate,
    "ingest": _ingest,
    "mocks": _mocks,
    "train": _train,
    "foundation": _foundation,
    "infer": _infer,
    "evaluate": _evaluate,
}
assert set(_STAGE_FUNCS) == set(STAGES)
