"""Atomic writes: a hidden temporary beside the target, renamed over it when complete.

A reader, or a resumed run, sees the old version or the new one, never half of one.
A writer killed mid-write leaves only a hidden ``.<name>.<random>.tmp`` entry,
which no ``*.parquet`` / ``*.json`` glob of a reader matches and
:func:`remove_leftovers` clears.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

#: Glob of the temporaries (hidden, and never ending in the target's suffix).
PATTERN = ".*.tmp"


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` (a file or a folder) on success.

    The temporary ends in ``.tmp``, so readers globbing for the target's suffix
    never see a half-written file (writers must not choose a format by the
    suffix). An existing folder at ``path`` (an earlier attempt) is removed just
    before the rename; on an error the temporary is removed and ``path`` left as
    it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)  # os.replace cannot replace a non-empty folder
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj, **dumps) -> Path:
    """Write ``obj`` as JSON (``indent=1`` unless given) atomically."""
    return write_text(path, json.dumps(obj, **({"indent": 1} | dumps)) + "\n")


def write_parquet(table, path: str | Path) -> Path:
    """Write a pyarrow table to ``path`` atomically."""
    import pyarrow.parquet as pq

    with replacing(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def remove_leftovers(folder: str | Path, recursive: bool = False) -> int:
    """Remove the temporaries of writers that died in ``folder``; returns how many."""
    folder = Path(folder)
    found = list((folder.rglob if recursive else folder.glob)(PATTERN))
    for tmp in found:
        _remove(tmp)
    return len(found)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink(missing_ok=True)


def remove_created(out: Path, existed: bool) -> None:
    """Undo a failed run's output folder: ``out`` itself if the run created it,
    else only its contents (what the run wrote there; the folder stays)."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
    elif out.is_dir():
        for p in out.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
