"""Row-partitioned Parquet datasets for tables without coordinates (mocks).

The same conventions as the HATS catalogues the ingest writes: explicit schema
(units in the field metadata, and in astropy's ``table_meta_yaml``), at most
``max_rows`` rows per partition, atomic partition writes, resume by skipping
finished partitions, and a ``_properties.json`` with the row count and the provenance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from jpasbatch.catalog.schemas import conform, with_astropy_units
from jpasbatch.core import atomic

# a leading underscore keeps pyarrow and dask dataset discovery from reading it as data
PROPERTIES = "_properties.json"


def _rebatch(tables: Iterable[pa.Table], max_rows: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into tables of exactly ``max_rows`` (the last shorter)."""
    pending: list[pa.Table] = []
    n = 0
    for table in tables:
        pending.append(table)
        n += table.num_rows
        while n >= max_rows:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, max_rows)
            rest = merged.slice(max_rows)
            pending, n = [rest], rest.num_rows
    if n:
        yield pa.concat_tables(pending)


def write_row_partitioned(
    tables: Iterable[pa.Table],
    out: str | Path,
    schema: pa.Schema,
    *,
    max_rows: int = 1_000_000,
    provenance: dict | None = None,
    resume: bool = False,
) -> dict:
    """Write a stream of tables as ``out/part-NNNNN.parquet`` partitions.

    Parameters
    ----------
    tables
        The rows, in order; each conforms to ``schema`` (extra columns dropped).
    out
        Dataset folder.
    schema
        The product's schema (e.g. :data:`jpasbatch.catalog.schemas.MOCK`).
    max_rows
        Rows per partition.
    provenance
        Stored in ``_properties.json`` and in each file's metadata.
    resume
        Keep partitions that already exist (the stream must be the same).

    Returns
    -------
    dict
        The properties written: ``total_rows``, ``partitions``, ``schema``, ``provenance``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total, parts = 0, []
    for k, part in enumerate(_rebatch(tables, max_rows)):
        name = f"part-{k:05d}.parquet"
        if not (resume and (out / name).exists()):
            write_partition(part, out / name, schema, provenance)
        total += part.num_rows
        parts.append(name)
    return write_properties(out, schema, parts, total, provenance, max_rows=max_rows)


def write_partition(
    table: pa.Table, path: str | Path, schema: pa.Schema, provenance: dict | None = None
) -> int:
    """Write one partition atomically (write, then rename); returns its rows."""
    path = Path(path)
    meta = {
        **(with_astropy_units(schema).metadata or {}),
        b"jpasbatch_provenance": json.dumps(provenance or {}),
    }
    atomic.write_parquet(conform(table, schema).replace_schema_metadata(meta), path)
    return table.num_rows


def write_properties(
    out: Path, schema: pa.Schema, parts: list[str], total: int, provenance: dict | None, **extra
) -> dict:
    """Write the dataset's ``_properties.json`` and return it."""
    props = {
        "total_rows": total,
        "partitions": parts,
        "schema": (schema.metadata or {}).get(b"product", b"").decode(),
        "provenance": provenance or {},
        **extra,
    }
    (Path(out) / PROPERTIES).write_text(json.dumps(props, indent=1))
    return props
