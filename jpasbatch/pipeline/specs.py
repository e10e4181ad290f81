"""The typed job specs of every stage, and their JSON Schemas (``schemas/*_spec.schema.json``).

A job spec is a YAML file whose fields are one of these pydantic models; the
CLI validates it before any work starts, so a typo fails in the first second,
not after an hour on the cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel

from jpasbatch.core.errors import InputError

M = TypeVar("M", bound=BaseModel)


def job_specs() -> dict[str, type[BaseModel]]:
    """Stage name -> spec model (imported lazily: the stages pull in torch, dask...)."""
    from jpasbatch.bench.spec import BenchSpec
    from jpasbatch.classify.study import StudySpec
    from jpasbatch.classify.train import TrainSpec
    from jpasbatch.foundation.train import FoundationSpec
    from jpasbatch.mocks.pipeline import MocksConfig
    from jpasbatch.pipeline.stages import JobSpec
    from jpasbatch.sim.emulator import SimulateConfig
    from jpasbatch.spectra.emulate import EmulateConfig
    from jpasbatch.spectra.train import SpectraTrainSpec
    from jpasbatch.vac.infer import InferSpec

    return {
        "simulate": SimulateConfig,
        "mocks": MocksConfig,
        "train": TrainSpec,
        "study": StudySpec,
        "foundation_train": FoundationSpec,
        "infer": InferSpec,
        "spectra_emulate": EmulateConfig,
        "spectra_train": SpectraTrainSpec,
        "job": JobSpec,
        "bench": BenchSpec,
    }


def export(directory: str | Path) -> list[Path]:
    """Write every spec's JSON Schema as ``<stage>_spec.schema.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in job_specs().items():
        path = directory / f"{name}_spec.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=1) + "\n")
        paths.append(path)
    return paths


def spec_from(model: type[M], path: str | Path | None, flags: dict) -> M:
    """``model`` from a YAML spec file's fields (if a file is given), overridden by the
    command-line ``flags`` that were set (not None)."""
    fields = {}
    if path is not None:
        try:
            fields = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise InputError("no such spec file", path=path) from None
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML: {exc}", path=path) from None
        if not isinstance(fields, dict):
            raise InputError("a spec file holds a mapping of field: value", path=path)
    return model(**(fields | {k: v for k, v in flags.items() if v is not None}))
