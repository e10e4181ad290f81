"""Dense per-object arrays of a VAC in Zarr, aligned by row with its Parquet partitions.

``VAC/arrays.zarr`` is one Zarr (v3) group with a sub-group per partition,
named like the partition with ``_`` for ``/`` (``Norder=1_Dir=0_Npix=33`` or
``part-00007``). Row
``i`` of every array in a sub-group belongs to row ``i`` of that partition's
Parquet file, whose ``OBJECT_ID`` column is stored beside the arrays to make
the alignment checkable. Typical arrays: ``P_MEMBERS`` (N, 8, 4) committee
member probabilities, ``EMBEDDING`` (N, 128) foundation-model embeddings.

Every array names its axes, in Zarr v3's ``dimension_names`` and in the
``_ARRAY_DIMENSIONS`` attribute (xarray's names for them, so
``xarray.open_zarr(store, group=...)`` opens a partition), and says what its
axes hold: ``classes`` (the class order of the last axis of ``P_MEMBERS``),
``z_grid`` (the root attribute with the redshifts of ``PZ_TEMPLATE``'s
columns), ``description``.

A partition's group is written under a temporary name and renamed into place,
so a reader never sees half of one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.core import atomic

STORE = "arrays.zarr"
#: The xarray attribute naming an array's dimensions.
DIMENSIONS = "_ARRAY_DIMENSIONS"
#: Root attribute: the redshift grid of ``PZ_TEMPLATE`` (see :mod:`jpasbatch.vac.baseline`).
PZ_GRID = "PZ_TEMPLATE_Z"

#: Axes and attributes of the arrays the models write; the first axis is always the
#: partition's rows (``object``, aligned with the Parquet file and ``OBJECT_ID``).
LAYOUT: dict[str, dict] = {
    "OBJECT_ID": {DIMENSIONS: ["object"], "description": "OBJECT_ID of each row"},
    "P_MEMBERS": {
        DIMENSIONS: ["object", "member", "class"],
        "classes": list(CLASSES),
        "description": "class probabilities of each committee member (NaN: no classifier "
        "output for the row)",
    },
    "PZ_TEMPLATE": {
        DIMENSIONS: ["object", "z"],
        "z_grid": PZ_GRID,
        "description": "template-fit p(z), qp.interp yvals on the root attribute z_grid names",
    },
    "EMBEDDING": {
        DIMENSIONS: ["object", "embedding"],
        "description": "foundation-model embedding",
    },
}


def array_attributes(name: str, ndim: int) -> dict:
    """The attributes of array ``name`` (see :data:`LAYOUT`); unknown arrays get
    dimensions ``object``, ``<name>_1``, ..."""
    attrs = dict(LAYOUT.get(name, {}))
    dims = attrs.get(DIMENSIONS)
    if dims is None or len(dims) != ndim:
        attrs[DIMENSIONS] = ["object", *[f"{name}_{k}" for k in range(1, ndim)]]
    return attrs


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
            attrs = array_attributes(name, values.ndim)
            # Zarr v3 names axes in ``dimension_names`` (what xarray reads from a v3
            # store); ``_ARRAY_DIMENSIONS`` is the same for v2-era readers
            arr = group.create_array(
                name,
                shape=values.shape,
                dtype=values.dtype,
                chunks=chunks,
                dimension_names=attrs[DIMENSIONS],
                attributes=attrs,
            )
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
