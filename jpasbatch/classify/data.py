"""Labelled photometry for training and evaluation, read shard by shard.

Inputs are Parquet files or folders in the ``MOCK`` schema (mock catalogues,
Test-Real / Test-Synth, labelled observed subsets). A training worker reads
only its shard: the row groups ``rank, rank + world, ...`` of the inputs, so
no worker touches another's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.catalog.schemas import BANDS, CLASSES
from jpasbatch.core.errors import InputError

_PHOT = [f"FLUX_{b}" for b in BANDS] + [f"FLUX_RELERR_{b}" for b in BANDS]
#: The evaluation protocols: class abundances of the sky, or of miniJPAS QSO III's
#: test sets (STAR, GALAXY and QSO a third each).
Protocol = Literal["natural", "balanced"]
_LABELS = ["OBJECT_ID", "CLASS", "MAG_R", "WEIGHT", "SPLIT"]


@dataclass
class LabelledSet:
    """Photometry and labels of N objects (``y`` indexes ``CLASSES``)."""

    object_id: np.ndarray
    flux: np.ndarray
    relerr: np.ndarray
    y: np.ndarray
    mag: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @property
    def abundance(self) -> np.ndarray:
        """Weights that restore natural abundances on validation / test rows (see ``MOCK``)."""
        w = np.nan_to_num(self.weight, nan=0.0)
        return w if w.sum() > 0 else np.ones(len(w))

    def protocol_weights(self, protocol: Protocol) -> np.ndarray:
        """Per-row weights of an evaluation protocol.

        ``natural``: :attr:`abundance`. ``balanced``: STAR, GALAXY and QSO each
        carry a third of the total weight (QSO_LOW and QSO_HIGH in their natural
        proportion), as in the paper's class-balanced test sets.
        """
        w = self.abundance
        if protocol == "natural":
            return w
        if protocol != "balanced":
            raise ValueError(f"protocol must be natural or balanced, not {protocol!r}")
        group = np.minimum(self.y, CLASSES.index("QSO_LOW"))  # QSO_LOW, QSO_HIGH -> one group
        mass = np.bincount(group, weights=w, minlength=3)
        return np.where(mass[group] > 0, w / (3 * np.where(mass > 0, mass, 1.0)[group]), 0.0)

    def subset(self, mask: np.ndarray) -> LabelledSet:
        return LabelledSet(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def parquet_files(paths: Sequence[str | Path]) -> list[Path]:
    """The Parquet files of files and dataset folders, in a stable order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.parquet"))
            if not found:
                raise InputError("no Parquet files in the folder", path=p)
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError("no such file or folder", path=p)
    return files


def read_labelled(
    paths: Sequence[str | Path],
    splits: Sequence[str] | None = None,
    *,
    rank: int = 0,
    world: int = 1,
) -> LabelledSet:
    """Rows of the inputs in ``splits`` (all if None), the shard of worker ``rank``.

    Sharding is by row group (every file is split into its row groups and
    those are dealt round-robin). When there are fewer row groups than
    workers, each worker takes every ``world``-th row of the whole input
    instead, so no worker is left without data.
    """
    files = parquet_files(paths)
    units = [(f, g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
    by_groups = len(units) >= world
    tables = []
    for f, g in units[rank::world] if by_groups else units:
        t = pq.ParquetFile(f).read_row_group(g, columns=_PHOT + _LABELS)
        if splits is not None:
            t = t.filter(pc.is_in(t["SPLIT"], pa.array(list(splits))))
        tables.append(t)
    table = pa.concat_tables(tables) if tables else None
    if table is None or table.num_rows == 0:
        raise InputError(f"no rows with SPLIT in {list(splits or [])}", path=files[0])
    if not by_groups:
        table = table.take(np.arange(rank, table.num_rows, world))
    return from_table(table, source=files[0])


def from_table(table: pa.Table, source: str | Path | None = None) -> LabelledSet:
    """A :class:`LabelledSet` from a ``MOCK``-schema table; unknown classes are an error."""
    classes = table["CLASS"].to_numpy(zero_copy_only=False)
    y = np.full(len(classes), -1, dtype=np.int64)
    for k, c in enumerate(CLASSES):
        y[classes == c] = k
    if (y < 0).any():
        row = int(np.argmax(y < 0))
        raise InputError(
            f"unknown class {classes[row]!r} (expected one of {', '.join(CLASSES)})",
            path=source,
            column="CLASS",
            row=row,
        )
    flux, relerr = photometry_arrays(table)
    return LabelledSet(
        object_id=table["OBJECT_ID"].to_numpy(),
        flux=flux,
        relerr=relerr,
        y=y,
        mag=table["MAG_R"].to_numpy(zero_copy_only=False).astype(np.float64),
        weight=table["WEIGHT"].to_numpy(zero_copy_only=False).astype(np.float64),
    )


def training_weights(y: np.ndarray, column: np.ndarray, how: str) -> np.ndarray:
    """Per-row training weights, mean 1.

    ``column``: the inputs' ``WEIGHT`` (the mocks' inverse-density weights);
    ``balanced``: 1 / (rows of the class); ``none``: all equal.
    """
    if how == "column":
        w = np.nan_to_num(np.asarray(column, dtype=float), nan=0.0)
    elif how == "balanced":
        w = 1.0 / np.bincount(y, minlength=len(CLASSES)).astype(float)[y]
    elif how == "none":
        w = np.ones(len(y))
    else:
        raise ValueError(f"weighting must be column, balanced or none, not {how!r}")
    if not (w > 0).any():
        raise ValueError("every training weight is zero: is this the training split?")
    return w / w.mean()
