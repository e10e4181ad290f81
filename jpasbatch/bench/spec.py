"""The typed spec of a bench run (``jpasbatch bench`` flags, or a YAML file of these fields)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Objects in the full J-PAS survey (~8,500 deg2 to r ~ 23.6).
SURVEY_OBJECTS = 40_000_000


class ClusterShape(BaseModel):
    """The cluster a full-survey run is projected onto.

    Attributes
    ----------
    nodes, cores, gpus, memory_gb
        Nodes, CPU cores per node (one single-threaded worker each), GPUs per
        node and memory per node (GB).
    objects
        Survey size the projection is made for.
    """

    model_config = ConfigDict(extra="forbid")

    nodes: int = Field(16, ge=1)
    cores: int = Field(32, ge=1)
    gpus: int = Field(0, ge=0)
    memory_gb: float = Field(256.0, gt=0)
    objects: int = Field(SURVEY_OBJECTS, ge=1)


def default_workers() -> list[int]:
    """1, 2, 4 ... up to the cores of this machine (always 1 and the core count)."""
    cores = os.cpu_count() or 1
    out, w = [], 1
    while w < cores:
        out.append(w)
        w *= 2
    return [*out, cores]


class BenchSpec(BaseModel):
    """A bench run.

    Attributes
    ----------
    out
        Folder of the report (``report.md``, PNGs, ``bench.json``).
    records
        Folder of the per-stage JSON records (default ``out/records``). Records
        already there from earlier runs (other stages) join the report.
    stages
        Stages to run (default: every registered stage).
    preset
        Default sizes: ``tiny`` (tests, seconds), ``quick`` (minutes), ``full``
        (the sizes the issues' goals name, an hour or more on 2 cores).
    sizes
        Sizes overriding the preset: stage name -> sizes, ``"*"`` for every stage.
    workers
        Worker counts (threads, Dask or Ray Train workers, per stage).
    repeats
        Repeats per point; fewer where the point's time exceeds ``max_point_seconds``.
    max_point_seconds
        Stop repeating a point once its repeats took this long (at least one runs).
    warmup
        One untimed call of the stage and of the peer before their first
        measurement (at the smallest size).
    dask_address, ray_address
        Running clusters to measure on (default: local ones).
    project
        Cluster shape of the full-survey projection.
    command
        The exact command line (recorded).
    """

    model_config = ConfigDict(extra="forbid")

    out: Path
    records: Path | None = None
    stages: list[str] | None = None
    preset: Literal["tiny", "quick", "full"] = "quick"
    sizes: dict[str, list[int]] = Field(default_factory=dict)
    workers: list[int] = Field(default_factory=default_workers)
    repeats: int = Field(3, ge=1)
    max_point_seconds: float = Field(60.0, gt=0)
    warmup: bool = True
    dask_address: str | None = None
    ray_address: str | None = None
    project: ClusterShape = Field(default_factory=ClusterShape)
    command: str = ""

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1:
            raise ValueError("workers must be positive integers")
        return sorted(set(v))

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        for key, sizes in v.items():
            if not sizes or min(sizes) < 1:
                raise ValueError(f"sizes of {key!r} must be positive integers")
        return {k: sorted(set(s)) for k, s in v.items()}

    @property
    def records_dir(self) -> Path:
        return self.records or self.out / "records"
