"""The pipeline, stated once: its stages in order, what each reads, runs and writes.

Every stage is one :class:`Stage` of :data:`STAGES`: the model of its section in
a job file, the library call that runs it (with its inputs wired from earlier
stages), the outputs it leaves under the workdir, the earlier stages whose
outputs it reads (``upstream``: their fingerprints are part of its own) and the
files from outside the job it reads (``inputs``: their checksums are). The job
spec (:data:`JobSpec`, one optional section per stage), the runner's plan and
``jpasbatch run --from`` all come from here. A new stage is one function and one
entry below.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, create_model

from jpasbatch.core.errors import JpasBatchError
from jpasbatch.distribute.engines import Engines
from jpasbatch.pipeline.sections import (
    EvaluateStage,
    FoundationStage,
    InferStage,
    IngestStage,
    MocksStage,
    Resources,
    TrainStage,
    _Strict,
)
from jpasbatch.sim.emulator import SimulateConfig

log = logging.getLogger(__name__)


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
            (:func:`jpasbatch.core.defaults.default_model`).
        """
        job = self.job
        if job.infer is not None and job.infer.model is not None:
            return job.infer.model
        if job.train is None:
            from jpasbatch.core import defaults

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


def expand(patterns: list[Path]) -> list[Path]:
    """Input paths with shell-style globs expanded (a pattern matching nothing is an error)."""
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


# --------------------------------------------------------------------------- the stages
# Each takes (job, paths, engines, progress, resume) and calls the library function
# its command calls (``resume``: an interrupted stage rerun keeps its finished parts,
# where the library can); domain imports are inside them so that reading a job file does
# not load torch, Dask and Ray.
def _simulate(job: JobSpec, paths: Paths, engines: Engines, progress: bool, resume: bool) -> None:
    from jpasbatch.sim.emulator import simulate

    simulate(paths.sim, job.simulate, client=engines.dask)


def _ingest(job: JobSpec, paths: Paths, engines: Engines, progress: bool, resume: bool) -> None:
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


def _mocks(job: JobSpec, paths: Paths, engines: Engines, progress: bool, resume: bool) -> None:
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


def _train(job: JobSpec, paths: Paths, engines: Engines, progress: bool, resume: bool) -> None:
    from jpasbatch.classify.train import TrainSpec, train

    fields = job.train.model_dump(exclude={"train", "out"}) | _ray_fields(job)
    spec = TrainSpec(train=job.train.train or [paths.mocks], out=paths.runs, **fields)
    log.info(f"model: {train(spec)}")


def _foundation(job: JobSpec, paths: Paths, engines: Engines, progress: bool, resume: bool) -> None:
    from jpasbatch.foundation.train import FoundationSpec, train

    fields = job.foundation.model_dump(exclude={"train", "out"}) | _ray_fields(job)
    spec = FoundationSpec(train=job.foundation.train or [paths.mocks], out=paths.runs, **fields)
    log.info(f"foundation model: {train(spec)}")


def _infer(job: JobSpec, paths: Paths, engines: Engines, progress: bool, resume: bool) -> None:
    from jpasbatch.vac.infer import InferOptions, InferSpec, infer
    from jpasbatch.vac.targets import write_targets

    spec = job.infer
    infer_spec = InferSpec(
        catalogue=paths.infer_catalogue,
        model=paths.model,
        foundation=paths.foundation,
        out=paths.vac,
        resume=resume,
        gpus=job.resources.gpus,
        **spec.model_dump(include=set(InferOptions.model_fields)),
    )
    summary = infer(infer_spec, client=None if job.resources.gpus else engines.dask,
                    progress=progress)  # fmt: skip
    targets = write_targets(
        paths.vac, threshold=spec.targets.p_qso, mag_limit=spec.targets.mag_limit
    )
    log.info(f"VAC: {summary['rows_vac']:,} rows, {summary['rows_rejected']:,} rejected; "
          f"targets: {targets['qso_targets']}")  # fmt: skip


def _evaluate(job: JobSpec, paths: Paths, engines: Engines, progress: bool, resume: bool) -> None:
    from jpasbatch.pipeline.report import job_report

    job_report(job, paths)


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline.

    Attributes
    ----------
    name
        The stage's section in a job file, its name in the plan and ``--from``.
    section
        The model of that section (its JSON Schema is part of the job's).
    run
        ``run(job, paths, engines, progress, resume)``: the stage's library call.
    outputs
        What it writes, by name (a stage whose outputs are missing runs again).
    upstream
        The stages, among those the job has, whose outputs it reads.
    inputs
        ``inputs(job, paths)``: the files from outside the job it reads (their
        checksums are part of its fingerprint).
    """

    name: str
    section: type[BaseModel]
    run: Callable[[JobSpec, Paths, Engines, bool, bool], None]
    outputs: Callable[[Paths], dict[str, Path]]
    upstream: Callable[[JobSpec], list[str]] = field(default=lambda job: [])
    inputs: Callable[[JobSpec, Paths], list[Path]] = field(default=lambda job, paths: [])


def _infer_inputs(job: JobSpec, paths: Paths) -> list[Path]:
    section = job.infer
    # a given model or the shipped one: its files' checksums, so a republished
    # default model reruns the VAC (the code hash covers only the .py files)
    model = paths.model if section.model is not None or job.train is None else None
    return [p for p in (section.catalogue, model, section.foundation) if p is not None]


#: The pipeline's stages, in order (the sections of a job spec, the order they run in).
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "simulate",
            SimulateConfig,
            _simulate,
            outputs=lambda p: {"catalogue": p.sim / "catalogue", "truth": p.sim / "truth"},
        ),
        Stage(
            "ingest",
            IngestStage,
            _ingest,
            outputs=lambda p: {"catalogue": p.catalogue / "ingest_summary.json"},
            upstream=lambda job: ["simulate"] if job.ingest.inputs is None else [],
            inputs=lambda job, paths: expand(job.ingest.inputs) if job.ingest.inputs else [],
        ),
        Stage(
            "mocks",
            MocksStage,
            _mocks,
            outputs=lambda p: {"mocks": p.mocks / "_properties.json"},
            upstream=lambda job: ["ingest", "simulate"],
        ),
        Stage(
            "train",
            TrainStage,
            _train,
            outputs=lambda p: {"model": p.trained_model},
            upstream=lambda job: ["mocks"] if job.train.train is None else [],
            inputs=lambda job, paths: list(job.train.train or []),
        ),
        Stage(
            "foundation",
            FoundationStage,
            _foundation,
            outputs=lambda p: {"model": p.trained_foundation},
            upstream=lambda job: ["mocks"] if job.foundation.train is None else [],
            inputs=lambda job, paths: list(job.foundation.train or []),
        ),
        Stage(
            "infer",
            InferStage,
            _infer,
            outputs=lambda p: {"vac": p.vac / "vac_summary.json", "targets": p.vac / "targets"},
            upstream=lambda job: ["train", "foundation", "ingest"],
            inputs=_infer_inputs,
        ),
        Stage(
            "evaluate",
            EvaluateStage,
            _evaluate,
            outputs=lambda p: {"report": p.report},
            upstream=lambda job: ["mocks", "train", "foundation", "infer", "simulate"],
        ),
    )
}


class _Job(_Strict):
    """A whole job: stages to run, their parameters, and the engines.

    Attributes
    ----------
    name
        The job's name (run names, reports).
    workdir
        Every stage writes under it (``sim/``, ``catalogue/``, ``mocks/``,
        ``runs/``, ``vac/``, ``evaluation/``) and ``job_state.json`` records
        what finished with which inputs and parameters.
    """

    name: str = "job"
    workdir: Path = Path("job_output")
    resources: Resources = Resources()

    def stages(self) -> list[str]:
        """The stages this job runs, in pipeline order."""
        return [s for s in STAGES if getattr(self, s) is not None]


#: The job spec: :class:`_Job`'s fields, then one optional section per stage of
#: :data:`STAGES`, in their order (a stage left out of the file is not run).
JobSpec = create_model(
    "JobSpec",
    __base__=_Job,
    __doc__=_Job.__doc__,
    **{name: (s.section | None, None) for name, s in STAGES.items()},
)
