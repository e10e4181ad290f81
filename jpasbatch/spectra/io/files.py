"""Spectra files as bytes: existence, gzip, the head that tells the format, the name."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from jpasbatch.core.errors import InputError

PathLike = str | os.PathLike[str]

#: The first bytes that tell a format (gzip is looked through, see :func:`read_head`).
_GZIP_MAGIC = b"\x1f\x8b"
FITS_MAGIC = b"SIMPLE  ="
PARQUET_MAGIC = b"PAR1"
TABLE_FORMATS = "CSV, whitespace-separated ASCII, FITS table or Parquet"
_KNOWN_SUFFIXES = {".gz", ".fits", ".fit", ".fts", ".csv", ".txt", ".dat", ".ascii", ".parquet"}


def check_file(path: PathLike) -> Path:
    """Return ``path`` as a Path after checking it is a non-empty file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", path=path)
    if not path.is_file():
        raise InputError("is not a regular file (a directory?)", path=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path=path)
    return path


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def read_head(path: Path, size: int = 2880) -> bytes:
    """First ``size`` bytes of the (decompressed) content, to sniff the format."""
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as fh:
                head = fh.read(size)
        else:
            with path.open("rb") as fh:
                head = fh.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"gzip stream is truncated or corrupt ({exc})", path=path) from exc
    if not head:
        raise InputError("file is empty (decompresses to 0 bytes)", path=path)
    return head


def read_bytes(path: Path) -> bytes:
    """The whole (decompressed) content of a file."""
    if not is_gzip(path):
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"gzip stream is truncated or corrupt ({exc})", path=path) from exc


def content_size(path: Path) -> int:
    """Size of the decompressed content, streaming so a large file is never held.

    Streaming to the end also proves the gzip stream is complete: astropy
    silently drops the HDUs after the point where a ``.gz`` file was cut.
    """
    if not is_gzip(path):
        return path.stat().st_size
    size = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                size += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"gzip stream is truncated or corrupt ({exc})", path=path) from exc
    return size


def file_stem(path: Path) -> str:
    """File name without ``.gz`` and format suffixes (``spec-1-2-3.fits.gz`` -> ``spec-1-2-3``)."""
    name = path.name
    while (suffix := Path(name).suffix.lower()) in _KNOWN_SUFFIXES and suffix:
        name = name[: -len(suffix)]
    return name or path.name
