"""``WORKDIR/job_state.json``: what finished, when, with which fingerprint and outputs."""

from __future__ import annotations

import json
from pathlib import Path

from jpasbatch.core import atomic

STATE = "job_state.json"


def read_state(workdir: Path) -> dict:
    """The job's recorded state (empty before its first run)."""
    path = workdir / STATE
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(workdir: Path, state: dict) -> None:
    """Record ``state`` atomically (an interrupted write leaves the last one)."""
    atomic.write_json(workdir / STATE, state)
