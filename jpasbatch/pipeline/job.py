"""Reading a job file: one YAML file that names the stages to run, their parameters
and resources (:data:`jpasbatch.pipeline.stages.JobSpec`; the sections'
models are in :mod:`jpasbatch.pipeline.sections`)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from jpasbatch.core.errors import InputError
from jpasbatch.pipeline.stages import JobSpec

__all__ = ["JobSpec", "load_job"]


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
