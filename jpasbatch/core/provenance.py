"""Provenance records attached to every output: code, inputs, parameters, time."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from jpasbatch.core.version import __version__


def file_sha256(path: str | Path, block: int = 1 << 23) -> str:
    """SHA-256 of a file, read in 8 MiB blocks (constant memory for large catalogues)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _git_commit() -> str | None:
    """The source tree's commit when run from a git checkout, else None."""
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def provenance(inputs: dict[str, str] | None = None, parameters: dict | None = None) -> dict:
    """A provenance record.

    Parameters
    ----------
    inputs
        Input path -> checksum.
    parameters
        The stage's parameters (JSON-serialisable).
    """
    return {
        "code_version": __version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": inputs or {},
        "parameters": parameters or {},
    }
