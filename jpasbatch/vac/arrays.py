"""Dense per-object arrays of a VAC in Zarr, aligned by row with its Parquet partitions.

``VAC/arrays.zarr`` is one Zarr (v3) group with a sub-group per partition,
named like the partition with ``_`` for ``/`` (``Norder=1_Dir=0_Npix=33`` or
``part-00007``). Row
``i`` of every array in a sub-group belongs to row ``i`` of that partition's
Parquet file, whose ``OBJECT_ID`` column is stored beside the arrays to make
the alignment checkable. Typical arrays: ``P_MEMBERS`` (N, 8, 4) committee
member probabilities, ``EMBEDDING`` (N, 128) foundation-model embeddings.

A partition's group is written under a temporary name and renamed into place,
so a reader never sees half of one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from jpasbatch import atomic

STORE = "arrays.zarr"


def init_store(vac_dir: str | Path, attrs: dict | None = None) -> Path:
    """Create (or open) the root group of ``vac_dir``'s arrays."""
    path = Path(vac_dir) / STORE
    root = zarr.open_group(str(path), mode="a")
    if attrs:
        root.attrs.update(attrs)
    return path


def write_partition_arrays(
    vac_dir: str | Path, key: str, object_id: np.ndarray, arrays: dict[str, np.ndarray]
) -> Path:
    """Write one partition's arrays atomically; returns the group's path."""
    final = Path(vac_dir) / STORE / group_name(key)
    n = len(object_id)
    # an earlier attempt of this partition (killed worker, rerun) is replaced
    with atomic.replacing(final) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        for name, values in {"OBJECT_ID": np.asarray(object_id, np.int64), **arrays}.items():
            values = np.asarray(values)
            if len(values) != n:
                raise ValueError(f"array {name} has {len(values)} rows, the partition {n}")
            # chunks of ~64k rows: whole rows together, readable per partition slice
            chunks = (min(max(n, 1), 65536), *values.shape[1:])
            arr = group.create_array(name, shape=values.shape, dtype=values.dtype, chunks=chunks)
            arr[...] = values
        group.attrs["rows"] = n
    return final


def read_partition_arrays(vac_dir: str | Path, key: str) -> dict[str, np.ndarray]:
    """All arrays of one partition (including ``OBJECT_ID``)."""
    group = zarr.open_group(str(Path(vac_dir) / STORE / group_name(key)), mode="r")
    return {name: group[name][...] for name in group.array_keys()}


def group_name(key: str) -> str:
    """The Zarr group of a partition key (flat: one level under the root)."""
    return key.replace("/", "_")
