"""Reading the foundation model's inputs, shard by shard.

* **Labelled** rows: ``MOCK`` / ``MOCK_EXT`` Parquet files or folders (mocks,
  Test-Synth / Test-Real); only the columns a token needs are read, and a
  missing optional column just means an absent token.
* **Unlabelled** observed rows (domain adaptation): an ingested catalogue (HATS
  folder, its ``dataset/``, or ``OBSERVED`` Parquet files), joined on
  ``OBJECT_ID`` with the external photometry folders when given, minus the
  objects of held-out test sets.

A Ray Train worker reads only its shard (row groups ``rank, rank + world,
...``; every ``world``-th row when there are fewer row groups than workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jpasbatch.catalog.schemas import EXTERNAL
from jpasbatch.classify.data import parquet_files
from jpasbatch.core.errors import InputError
from jpasbatch.foundation.tokens import vocabulary

#: Label and bookkeeping columns read with the tokens when present.
LABEL_COLUMNS = ("OBJECT_ID", "CLASS", "Z", "MAG_R", "WEIGHT", "SPLIT")


def token_columns() -> list[str]:
    """Every column a token can come from."""
    cols = []
    for tok in vocabulary():
        if tok.group == "band":
            cols += [f"FLUX_{tok.name}", f"FLUX_RELERR_{tok.name}"]
        else:
            cols.append(tok.name)
    return cols


def _dataset_files(paths: Sequence[str | Path]) -> list[Path]:
    """Parquet files; a HATS catalogue folder contributes its ``dataset/``."""
    resolved = []
    for p in map(Path, paths):
        resolved.append(p / "dataset" if (p / "dataset").is_dir() else p)
    return [f for f in parquet_files(resolved) if not f.name.startswith("_")]


def read_rows(
    paths: Sequence[str | Path],
    splits: Sequence[str] | None = None,
    *,
    rank: int = 0,
    world: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
) -> pa.Table:
    """The token and label columns of worker ``rank``'s shard, rows with ``SPLIT`` in ``splits``.

    ``max_rows`` keeps a random subset (seeded) of the shard.
    """
    files = _dataset_files(paths)
    wanted = set(token_columns()) | set(LABEL_COLUMNS)
    units = [(f, g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
    by_groups = len(units) >= world
    tables = []
    for f, g in units[rank::world] if by_groups else units:
        pf = pq.ParquetFile(f)
        cols = [c for c in pf.schema_arrow.names if c in wanted]
        t = pf.read_row_group(g, columns=cols)
        if splits is not None:
            if "SPLIT" not in t.column_names:
                raise InputError("no SPLIT column to select splits from", path=f)
            t = t.filter(pc.is_in(t["SPLIT"], pa.array(list(splits))))
        tables.append(t)
    if not tables:
        raise InputError("no Parquet row groups", path=paths[0] if paths else None)
    table = pa.concat_tables(tables, promote_options="default")
    if not by_groups:
        table = table.take(np.arange(rank, table.num_rows, world))
    if table.num_rows == 0:
        raise InputError(f"no rows with SPLIT in {list(splits or [])}", path=files[0])
    if max_rows is not None and table.num_rows > max_rows:
        rng = np.random.default_rng([seed, rank])
        table = table.take(np.sort(rng.choice(table.num_rows, max_rows, replace=False)))
    return table


def read_external(paths: Sequence[str | Path]) -> pd.DataFrame:
    """External photometry (``EXTERNAL`` schema) indexed by ``OBJECT_ID``."""
    tables = [pq.read_table(f, columns=EXTERNAL.names) for f in _dataset_files(paths)]
    return pa.concat_tables(tables).to_pandas().set_index("OBJECT_ID")


def join_external(table: pa.Table, external: pd.DataFrame | None) -> pa.Table:
    """``table`` with the external columns of its ``OBJECT_ID`` appended (null where absent)."""
    if external is None:
        return table
    ext = external.reindex(table["OBJECT_ID"].to_numpy())
    for field in EXTERNAL:
        if field.name == "OBJECT_ID" or field.name in table.column_names:
            continue
        values = ext[field.name]
        arr = pa.array(values.where(values.notna(), None).tolist(), type=field.type)
        table = table.append_column(field, arr)
    return table


def read_unlabelled(
    paths: Sequence[str | Path],
    *,
    external: Sequence[str | Path] | None = None,
    exclude: Sequence[str | Path] | None = None,
    rank: int = 0,
    world: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
) -> pa.Table:
    """Observed rows of worker ``rank`` for domain adaptation (see the module docstring)."""
    table = read_rows(paths, None, rank=rank, world=world, max_rows=None, seed=seed)
    if exclude:
        held_out = pa.concat_tables(
            [pq.read_table(f, columns=["OBJECT_ID"]) for f in _dataset_files(exclude)]
        )["OBJECT_ID"]
        table = table.filter(pc.invert(pc.is_in(table["OBJECT_ID"], held_out)))
    if max_rows is not None and table.num_rows > max_rows:
        rng = np.random.default_rng([seed, rank, 1])
        table = table.take(np.sort(rng.choice(table.num_rows, max_rows, replace=False)))
    return join_external(table, read_external(external) if external else None)


def class_index(table: pa.Table) -> np.ndarray:
    """``CLASS`` as indices of :data:`jpasbatch.catalog.schemas.CLASSES` (-1 if unknown)."""
    from jpasbatch.catalog.schemas import CLASSES

    raw = table["CLASS"].to_numpy(zero_copy_only=False)
    y = np.full(len(raw), -1, np.int64)
    for k, c in enumerate(CLASSES):
        y[raw == c] = k
    return y
