"""The job spec: one YAML file that names the stages to run, their parameters and resources.

A stage section is the stage's own spec (the model the stage's command-line
validates) with the inputs it takes from earlier stages left out: the runner
wires them (the ingest reads the emulator's catalogue, the mocks take their
errors from the ingested survey, training reads the mocks, inference runs the
trained model over the ingested survey, evaluation compares with the truth).
An input given explicitly (e.g. ``ingest.inputs`` for a real catalogue) wins.
A stage left out of the file is not run.

Validation is strict (unknown keys are errors), so a typo fails at once with
the key's path in the message, not after an hour on the cluster. Relative
paths are relative to where the job is run from, as on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jpasbatch.catalog.cuts import QualityCuts
from jpasbatch.classify.train import TrainSpec
from jpasbatch.errors import InputError
from jpasbatch.foundation.train import FoundationSpec
from jpasbatch.jobspecs import STAGES
from jpasbatch.mocks.pipeline import MocksConfig
from jpasbatch.sim.emulator import SimulateConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlurmResources(_Strict):
    """Dask workers as Slurm jobs (dask-jobqueue's ``SLURMCluster``; the ``slurm`` extra)."""

    jobs: int = Field(4, ge=1, description="Slurm jobs, one Dask worker process per core")
    cores: int = Field(16, ge=1)
    memory: str = "64GB"
    walltime: str = "04:00:00"
    queue: str | None = None
    account: str | None = None
    job_extra_directives: list[str] = []


class DaskResources(_Strict):
    """Where the Dask stages run: a scheduler address, Slurm, or a local cluster."""

    address: str | None = None
    workers: int | None = Field(
        None, ge=1, description="local cluster size (default: cores, at most 8)"
    )
    slurm: SlurmResources | None = None


class RayResources(_Strict):
    """Where training runs: a Ray address (default: a local Ray) and the workers."""

    address: str | None = None
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    max_failures: int = Field(1, ge=-1)


class Resources(_Strict):
    dask: DaskResources = DaskResources()
    ray: RayResources = RayResources()
    gpus: int = Field(0, ge=0, description="GPUs for inference (dask-cuda, the gpu extra)")


class IngestStage(_Strict):
    """``jpasbatch ingest``; ``inputs`` default to the emulator's catalogue."""

    inputs: list[Path] | None = None
    cuts: QualityCuts = QualityCuts()
    max_rows_per_partition: int = Field(1_000_000, ge=1)
    chunk_rows: int = Field(200_000, ge=1)


class MocksStage(MocksConfig):
    """``jpasbatch mocks``; errors from the ingested survey; ``report``: the diagnostics."""

    report: bool = False


#: Training fields a job sets from its workdir and ``resources.ray``.
JOB_OWNED = {"out", "workers", "use_gpu", "max_failures", "ray_address"}


def _refuse_job_owned(section: BaseModel, name: str) -> None:
    # these come from the job (workdir, resources.ray): set here they would be ignored
    owned = JOB_OWNED & section.model_fields_set
    if owned:
        raise ValueError(
            f"{', '.join(sorted(owned))}: set by the job (workdir / resources.ray), "
            f"not in the {name} section"
        )


class TrainStage(TrainSpec):
    """``jpasbatch train``; ``train`` defaults to the mocks, ``out`` / ``name`` to the job's.

    The Ray fields (``workers``, ``use_gpu``, ``max_failures``, ``ray_address``)
    come from ``resources.ray``.
    """

    train: list[Path] | None = None  # type: ignore[assignment]
    name: str = "classifier"

    @model_validator(mode="after")
    def _job_owned_fields(self) -> TrainStage:
        _refuse_job_owned(self, "train")
        return self


class FoundationStage(FoundationSpec):
    """``jpasbatch foundation-train``; ``train`` defaults to the mocks (``mocks.extras``
    gives it the DECam / WISE / label columns), ``out`` to the job's ``runs/``.

    The Ray fields come from ``resources.ray``; ``ray: false`` trains in the
    runner's process (one machine, no Ray start-up).
    """

    train: list[Path] | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _job_owned_fields(self) -> FoundationStage:
        _refuse_job_owned(self, "foundation")
        return self


class TargetsSection(_Strict):
    p_qso: float = Field(0.5, ge=0, le=1, description="P(QSO_LOW) + P(QSO_HIGH) threshold")
    mag_limit: float = Field(23.0, description="faintest rSDSS magnitude of a target")


class InferStage(_Strict):
    """``jpasbatch infer``; ``catalogue`` defaults to the ingested survey, ``model`` to
    the job's trained classifier, or without a train stage to the one shipped with the
    package (as ``jpasbatch infer`` without ``--model``)."""

    catalogue: Path | None = None
    model: Path | None = Field(
        None,
        description="classifier (default: the job's train stage's; without one, the "
        "classifier shipped with the package)",
    )
    foundation: Path | None = Field(
        None, description="foundation model (default: the job's foundation stage's, if any)"
    )
    batch_size: int = Field(65536, ge=1)
    rows_per_partition: int = Field(200_000, ge=1)
    dtype: Literal["float32", "bfloat16"] = "float32"
    templates: Literal["full", "coarse", "none"] = "full"
    class_source: Literal["auto", "classifier", "template", "combined"] = "auto"
    z_source: Literal["auto", "template", "foundation", "none"] = "auto"
    targets: TargetsSection = TargetsSection()


class EvaluateStage(_Strict):
    """Reports: the mocks' test split, Test-Real, and the VAC against the emulator's truth."""

    protocols: list[Literal["natural", "balanced"]] = ["natural", "balanced"]
    r_max: float = Field(23.6, description="faintest true rSDSS in the VAC-vs-truth report")


class JobSpec(_Strict):
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
    simulate: SimulateConfig | None = None
    ingest: IngestStage | None = None
    mocks: MocksStage | None = None
    train: TrainStage | None = None
    foundation: FoundationStage | None = None
    infer: InferStage | None = None
    evaluate: EvaluateStage | None = None

    def stages(self) -> list[str]:
        """The stages this job runs, in pipeline order."""
        return [s for s in STAGES if getattr(self, s) is not None]


def load_job(path: str | Path) -> JobSpec:
    """Read and validate a job YAML; errors name the file and the offending key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError("no such job file", path=path) from None
    except yaml.YAMLError as exc:
        # one line: the problem and where (PyYAML's own text quotes the source over lines)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"not valid YAML: {what}{where}", path=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not a text file ({exc.reason})", path=path) from None
    if data is not None and not isinstance(data, dict):
        raise InputError(f"a job spec is a YAML mapping, not a {type(data).__name__}", path=path)
    try:
        job = JobSpec.model_validate(data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(k) for k in err["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise InputError(f"key {key!r}: {err['msg']}{more}", path=path) from None
    return job
