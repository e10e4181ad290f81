"""The sections of a job file: each stage's parameters, and the resources.

A stage section is the stage's own spec (the model the stage's command-line
validates) with the inputs it takes from earlier stages left out: the runner
wires them (the ingest reads the emulator's catalogue, the mocks take their
errors from the ingested survey, training reads the mocks, inference runs the
trained model over the ingested survey, evaluation compares with the truth).
An input given explicitly (e.g. ``ingest.inputs`` for a real catalogue) wins.
A stage left out of the file is not run.

Validation is strict (unknown keys are errors), so a typo fails at once with
the key's path in the message, not after an hour on the cluster. Relative
paths are relative to where the job is run from, as on the command line. The
whole job (:class:`jpasbatch.pipeline.stages.JobSpec`) is made of these
sections in the order of :data:`jpasbatch.pipeline.stages.STAGES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jpasbatch.catalog.cuts import QualityCuts
from jpasbatch.classify.train import TrainSpec
from jpasbatch.foundation.train import FoundationSpec
from jpasbatch.mocks.pipeline import MocksConfig
from jpasbatch.vac.infer import InferOptions


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


class InferStage(InferOptions):
    """``jpasbatch infer``; ``catalogue`` defaults to the ingested survey, ``model`` to
    the job's trained classifier, or without a train stage to the one shipped with the
    package (as ``jpasbatch infer`` without ``--model``).

    The options shared with ``jpasbatch infer`` (batch size, partition rows, precision,
    template grids, the sources of ``CLASS`` and ``Z_PHOT``) are
    :class:`~jpasbatch.vac.infer.InferOptions`, with the same defaults; the GPUs and
    the Dask cluster come from ``resources``.
    """

    catalogue: Path | None = None
    model: Path | None = Field(
        None,
        description="classifier (default: the job's train stage's; without one, the "
        "classifier shipped with the package)",
    )
    foundation: Path | None = Field(
        None, description="foundation model (default: the job's foundation stage's, if any)"
    )
    targets: TargetsSection = TargetsSection()


class EvaluateStage(_Strict):
    """Reports: the mocks' test split, Test-Real, and the VAC against the emulator's truth."""

    protocols: list[Literal["natural", "balanced"]] = ["natural", "balanced"]
    r_max: float = Field(23.6, description="faintest true rSDSS in the VAC-vs-truth report")
