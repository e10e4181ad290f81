"""The partitions of an inference input, and reading one as an observed-catalogue table.

Three kinds of input are understood:

* an ingested **HATS catalogue** (``jpasbatch ingest``): one partition per
  HEALPix pixel file; the VAC keeps the same pixels, so it opens in LSDB;
* a **Parquet file or folder** in the observed layout (``FLUX_<band>``,
  ``FLUX_RELERR_<band>``, optional coordinates): one partition per row group;
* a **photometry file** (``jpasbatch photometry``: ``ID``, ``FLUX_<band>``,
  ``RA``/``DEC``, errors with ``--noise depth`` only): the same, with
  ``OBJECT_ID`` from ``ID`` (:func:`object_ids`) and errors unknown (NaN) when absent.

Pure pyarrow: a :class:`Partition` is a small picklable description that a
Dask task turns into a table with :func:`read_partition`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jpasbatch.catalog.schemas import BANDS, flux_column, relerr_column
from jpasbatch.core.errors import InputError

_PIXEL = re.compile(r"Norder=(\d+)/Dir=\d+/Npix=(\d+)\.parquet$")
HEALPIX = "_healpix_29"


@dataclass(frozen=True)
class Partition:
    """One unit of work: a file, or a range of its row groups.

    Attributes
    ----------
    key
        Stable name of the partition, used for its output files
        (``Norder=1/Dir=0/Npix=33`` for a HEALPix pixel, ``part-00007`` otherwise).
    path
        The input file.
    row_groups
        Row groups of ``path`` to read (None: the whole file).
    rows
        Rows in the partition, from the Parquet footer.
    pixel
        ``(order, pixel)`` for HATS inputs, else None.
    """

    key: str
    path: str
    row_groups: tuple[int, ...] | None
    rows: int
    pixel: tuple[int, int] | None = None


def is_hats(path: str | Path) -> bool:
    """Whether ``path`` is a HATS catalogue folder."""
    path = Path(path)
    return path.is_dir() and (path / "hats.properties").exists() and (path / "dataset").is_dir()


def partitions(path: str | Path, rows_per_partition: int = 200_000) -> list[Partition]:
    """The partitions of an inference input (see the module docstring).

    Parameters
    ----------
    path
        HATS catalogue folder, Parquet file, or folder of Parquet files.
    rows_per_partition
        For plain Parquet: consecutive row groups are grouped up to about this many rows.
    """
    path = Path(path)
    if is_hats(path):
        parts = []
        for f in sorted((path / "dataset").rglob("Npix=*.parquet")):
            m = _PIXEL.search(f.as_posix())
            if m is None:
                continue
            order, pix = int(m.group(1)), int(m.group(2))
            key = f"Norder={order}/Dir={pix // 10_000 * 10_000}/Npix={pix}"
            rows = pq.read_metadata(f).num_rows
            parts.append(Partition(key, str(f), None, rows, (order, pix)))
        if not parts:
            raise InputError("a HATS catalogue without data partitions", path=path)
        return parts
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("_"))
    elif path.is_file():
        files = [path]
    else:
        raise InputError("no such catalogue file or folder", path=path)
    if not files:
        raise InputError("no Parquet files in the folder", path=path)
    parts = []
    for f in files:
        try:
            meta = pq.read_metadata(f)
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"not a readable Parquet file ({exc})", path=f) from None
        group: list[int] = []
        n = 0
        for g in range(meta.num_row_groups):
            group.append(g)
            n += meta.row_group(g).num_rows
            if n >= rows_per_partition or g == meta.num_row_groups - 1:
                parts.append(Partition(f"part-{len(parts):05d}", str(f), tuple(group), n))
                group, n = [], 0
    return parts


def object_ids(ids: pa.Array | pa.ChunkedArray, path: str) -> pa.Array:
    """A stable int64 ``OBJECT_ID`` for each ``ID``.

    Integer IDs are used as they are. String IDs (SDSS ``PLATE-MJD-FIBER``, file
    names, designations) are hashed: the first 63 bits of their BLAKE2b digest, the
    same on every machine and run, so a VAC row can be matched to its Zarr arrays
    and to other runs by an integer as HATS/LSDB catalogues expect, while the VAC
    keeps the string itself in ``ID``. Two different strings with one hash in a
    partition (odds ~1e-8 per billion pairs) are refused rather than merged.
    """
    if pa.types.is_integer(ids.type):
        return pa.array(np.asarray(ids.to_numpy(zero_copy_only=False), np.int64))
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        raise InputError(
            f"ID must be an integer or a string to give an OBJECT_ID, not {ids.type}",
            path=path,
            column="ID",
        )
    values = ids.to_pylist()
    if None in values:
        raise InputError("ID is empty (null)", path=path, column="ID", row=values.index(None))
    hashed = np.array(
        [
            int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little") >> 1
            for v in values
        ],
        dtype=np.int64,
    )
    distinct = dict(zip(values, hashed, strict=True))
    if len(set(distinct.values())) != len(distinct):
        raise InputError("two different IDs hash to one OBJECT_ID", path=path, column="ID")
    return pa.array(hashed)


def check_columns(schema: pa.Schema, path: str | Path) -> None:
    """Refuse an input without the 60 J-PAS fluxes or an id, naming the band count.

    The bands are checked first: a catalogue of another photometric system (50
    bands, say) is told so, not that it lacks ``OBJECT_ID``.

    Raises
    ------
    InputError
        Naming the file, how many of the 60 bands it has, and the first missing ones.
    """
    names = set(schema.names)
    archive = "FLUX_APER_COR_3_0"
    if archive in names and flux_column(BANDS[0]) not in names:
        t = schema.field(archive).type
        bands = f" of {t.list_size} bands" if pa.types.is_fixed_size_list(t) else ""
        raise InputError(
            f"an archive-layout catalogue ({archive} arrays{bands}): run `jpasbatch ingest` "
            f"on it first (infer reads the {len(BANDS)} FLUX_<band> columns it writes)",
            path=path,
            column=archive,
        )
    wanted = [flux_column(b) for b in BANDS]
    missing = [c for c in wanted if c not in names]
    if missing:
        extra = sorted(
            n for n in names - set(wanted) if n.startswith("FLUX_") and "RELERR" not in n
        )
        have = len(BANDS) - len(missing)
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        other = f"; other flux columns: {', '.join(extra[:5])}" if extra else ""
        raise InputError(
            f"the catalogue has {have} of the {len(BANDS)} J-PAS bands (FLUX_<band> "
            f"columns); missing: {shown}{other}",
            path=path,
            column=missing[0],
        )
    if "OBJECT_ID" not in names and "ID" not in names:
        raise InputError("no OBJECT_ID (or ID) column", path=path, column="OBJECT_ID")


def read_partition(part: Partition) -> pa.Table:
    """The partition as a table with ``OBJECT_ID``, the flux and error columns.

    Coordinates, ``CLASS_STAR``, the HEALPix index and any other columns are
    kept as they are. A photometry file's ``ID`` gives ``OBJECT_ID``
    (:func:`object_ids`), its ``RA``/``DEC`` the coordinates and its missing
    errors NaN.
    """
    pf = pq.ParquetFile(part.path)
    table = pf.read() if part.row_groups is None else pf.read_row_groups(list(part.row_groups))
    names = set(table.column_names)
    check_columns(table.schema, part.path)
    if "OBJECT_ID" not in names:
        table = table.append_column("OBJECT_ID", object_ids(table["ID"], part.path))
    for ours, theirs in (("ALPHA_J2000", "RA"), ("DELTA_J2000", "DEC")):
        if ours not in names and theirs in names:
            table = table.append_column(ours, table[theirs].cast(pa.float64()))
    nan = pa.array(np.full(table.num_rows, np.nan, np.float32))
    for b in BANDS:
        if relerr_column(b) not in names:
            table = table.append_column(relerr_column(b), nan)
    return table
