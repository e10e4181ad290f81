"""Prepared spectra on disk: partitioned Zarr arrays plus a Parquet index table.

A prepared-spectra folder (written by :mod:`jpasbatch.spectra.prepare` from
survey files, or by :mod:`jpasbatch.spectra.emulate`) holds::

    DIR/index/part-00000.parquet   one row per spectrum: ID, SOURCE, labels, SNR...
    DIR/spectra.zarr/part-00000/   FLUX, IVAR (float32) and GOOD (bool), (n, 4618)
    DIR/rejects/part-00000.parquet spectra or files that could not be used, with a reason
    DIR/summary.json               grid, counts, provenance

Row ``i`` of a partition's arrays is row ``i`` of its index file (the ``ROW``
column says so, and ``ID`` is stored in both to make the alignment checkable).
Every partition is written under a temporary name and renamed into place, so
an interrupted job leaves whole partitions only, and a rerun skips them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import zarr

from jpasbatch.core import atomic
from jpasbatch.core.errors import InputError
from jpasbatch.spectra.grid import COMMON_GRID, LogGrid

ARRAYS = "spectra.zarr"
INDEX = "index"
REJECTS = "rejects"
SUMMARY = "summary.json"
STARTED = "started.json"


def partition_name(k: int) -> str:
    return f"part-{k:05d}"


def is_done(out: str | Path, name: str) -> bool:
    """Whether partition ``name`` was written completely (its index file is the last write)."""
    return (Path(out) / INDEX / f"{name}.parquet").exists()


def write_partition(
    out: str | Path,
    name: str,
    index: pd.DataFrame,
    flux: np.ndarray,
    ivar: np.ndarray,
    good: np.ndarray,
    rejects: pd.DataFrame | None = None,
) -> int:
    """Write one partition (arrays, then rejects, then the index); returns its rows."""
    out = Path(out)
    n = len(index)
    for arr_name, arr in (("FLUX", flux), ("IVAR", ivar), ("GOOD", good)):
        if len(arr) != n:
            raise ValueError(f"{arr_name} has {len(arr)} rows, the index {n}")
    ids = np.asarray(index["ID"].astype(str).to_numpy(), dtype=str)
    values = {
        "FLUX": np.asarray(flux, np.float32),
        "IVAR": np.asarray(ivar, np.float32),
        "GOOD": np.asarray(good, bool),
    }
    # a previous, interrupted attempt at this partition is replaced
    with atomic.replacing(out / ARRAYS / name) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        for arr_name, arr in values.items():
            chunks = (max(1, min(n, 1024)), *arr.shape[1:])
            z = group.create_array(arr_name, shape=arr.shape, dtype=arr.dtype, chunks=chunks)
            if n:
                z[...] = arr
        group.attrs["rows"] = n
        group.attrs["ids"] = ids.tolist()
    if rejects is not None and len(rejects):
        atomic.write_parquet(
            pa.Table.from_pandas(rejects, preserve_index=False), out / REJECTS / f"{name}.parquet"
        )
    table = index.reset_index(drop=True).assign(PARTITION=name, ROW=np.arange(n, dtype=np.int64))
    atomic.write_parquet(
        pa.Table.from_pandas(table, preserve_index=False), out / INDEX / f"{name}.parquet"
    )
    return n


def write_summary(out: str | Path, summary: dict) -> Path:
    return atomic.write_json(Path(out) / SUMMARY, summary, indent=2, default=str)


def check_resume(out: str | Path, parameters: dict) -> None:
    """Record the run's ``parameters`` in ``out``; refuse to resume a run made with others.

    Finished partitions are kept on a rerun, so they must come from the same inputs.
    """
    path = Path(out) / STARTED
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in parameters.keys() | before.keys()
                         if before.get(k) != parameters.get(k))  # fmt: skip
        if changed:
            raise InputError(
                f"was written with other {', '.join(changed)}: choose another output folder "
                "or delete it",
                path=out,
            )
    path.write_text(json.dumps(parameters, indent=1, sort_keys=True))


class SpectraStore:
    """Read access to a prepared-spectra folder.

    Parameters
    ----------
    path
        The folder.

    Attributes
    ----------
    index
        Every spectrum's row (all partitions, in partition order).
    grid
        The wavelength grid of the arrays.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        files = sorted((self.path / INDEX).glob("part-*.parquet"))
        if not files:
            raise InputError("not a prepared-spectra folder (no index/part-*.parquet)", path=path)
        self.index = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        summary = self.path / SUMMARY
        meta = json.loads(summary.read_text()) if summary.exists() else {}
        self.summary = meta
        self.grid = LogGrid(**meta["grid"]) if "grid" in meta else COMMON_GRID

    def __len__(self) -> int:
        return len(self.index)

    def rejects(self) -> pd.DataFrame:
        files = sorted((self.path / REJECTS).glob("*.parquet"))
        return (
            pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
            if files
            else (pd.DataFrame(columns=["SOURCE", "ID", "REASON"]))
        )

    def arrays(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``FLUX, IVAR, GOOD`` of ``rows`` (positions in :attr:`index`; default all), in order."""
        rows = np.arange(len(self.index)) if rows is None else np.asarray(rows, dtype=np.int64)
        sel = self.index.iloc[rows]
        n_pix = self.grid.n
        flux = np.empty((len(rows), n_pix), np.float32)
        ivar = np.empty((len(rows), n_pix), np.float32)
        good = np.empty((len(rows), n_pix), bool)
        where = np.arange(len(rows))
        for name, part in sel.groupby("PARTITION", sort=False):
            group = zarr.open_group(str(self.path / ARRAYS / name), mode="r")
            pos = where[(sel["PARTITION"] == name).to_numpy()]
            r = part["ROW"].to_numpy()
            # read the partition's span once, then pick rows (zarr chunks are row blocks)
            lo, hi = int(r.min()), int(r.max()) + 1
            for arr_name, dest in (("FLUX", flux), ("IVAR", ivar), ("GOOD", good)):
                dest[pos] = group[arr_name][lo:hi][r - lo]
        return flux, ivar, good
