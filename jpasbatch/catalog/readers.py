"""Streaming readers of survey object catalogues in the CEFCA archive layout.

Formats: FITS binary tables, CSV (the archive's ADQL dumps: ``#`` lines with the
query, then a quoted header; plain CSV too) and Parquet; FITS and CSV may be
gzipped. The format is sniffed from the first bytes. Every reader streams chunks,
so a catalogue larger than memory goes through: Parquet by
``ParquetFile.iter_batches``; CSV by pyarrow's streaming reader, the needed columns
read as text and converted here so that a bad value is found by row; FITS by
row slices of the ``memmap=True`` table (a gzipped FITS table cannot be mapped:
astropy decompresses it into memory, so gzip only small FITS files).

Fluxes, relative errors, FLAGS and MASK_FLAGS may be 60-element arrays in archive
filter order (FITS ``60E``, Parquet lists, CSV text ``"{1,2,...}"`` as the archive
writes it, or ``"[1, 2, ...]"``); fluxes and errors may be one column per band.
Flag arrays are OR-ed over the bands. Structural problems raise :class:`InputError`
naming file, column and row; odd values (NaN, inf, negative errors, repeated ids)
pass through for the quality cuts. A value that cannot be read as a number (``abc``
in a flux column) raises too, except through :func:`iter_chunks`, which nulls it
and names its row and column, so that ingest can reject the row and keep the file.
A zero-byte file is an error; a header without rows is a valid empty catalogue.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from jpasbatch.catalog.schemas import BANDS, OBSERVED, conform, flux_column, relerr_column
from jpasbatch.core.errors import InputError

NBANDS = len(BANDS)
#: NUMBER must be below this for TILE_ID * 1e6 + NUMBER to be unique.
MAX_NUMBER = 1_000_000
#: The archive table that holds FLUX_APER_COR_3_0 (named in written CSV queries).
ARCHIVE_TABLE = "minijpas.FLambdaDualObj"
#: OBSERVED columns between OBJECT_ID and the photometry, in schema order.
_META = OBSERVED.names[1:8]
_FITS_TABLES = (fits.BinTableHDU, fits.TableHDU)
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_SUFFIXES |= dict.fromkeys((".fits", ".fit", ".fts"), "fits")
_FLOATS = (pa.float32(), pa.float64())
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


@dataclass(frozen=True)
class ColumnMap:
    """Where each quantity is in the input file. Defaults: the CEFCA archive names.

    Names match exactly or, failing that, case-insensitively.

    Attributes
    ----------
    tile_id, number, ra, dec, flags, mask_flags, class_star
        The scalar columns (FLAGS and MASK_FLAGS may also be 60-element arrays).
    flux, relerr
        Flux and relative error: one 60-element array column of this name or, if
        the file has none, one column per band named by ``band_pattern``.
    band_pattern
        Per-band column name, formatted with ``column`` (``flux`` or ``relerr``)
        and ``band`` (a :data:`~jpasbatch.catalog.schemas.BANDS` name).
    object_id
        A unique int64 id column to use instead of ``TILE_ID * 1e6 + NUMBER``.
    hdu
        FITS only: name or index of the table HDU; ``None`` takes the first table.
    """

    tile_id: str = "TILE_ID"
    number: str = "NUMBER"
    ra: str = "ALPHA_J2000"
    dec: str = "DELTA_J2000"
    flags: str = "FLAGS"
    mask_flags: str = "MASK_FLAGS"
    class_star: str = "CLASS_STAR"
    flux: str = "FLUX_APER_COR_3_0"
    relerr: str = "FLUX_RELERR_APER_COR_3_0"
    band_pattern: str = "{column}_{band}"
    object_id: str | None = None
    hdu: str | int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> ColumnMap:
        """Build from a mapping (e.g. a YAML file); an unknown key raises InputError."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in known:
                raise InputError(f"unknown column-map key; known: {', '.join(known)}", column=key)
        return cls(**d)

    def per_band(self, column: str) -> list[str]:
        """The per-band column names of ``column``, in band order."""
        return [self.band_pattern.format(column=column, band=b) for b in BANDS]


@dataclass(frozen=True)
class CatalogueChunk:
    """Consecutive rows of a catalogue file, as read by :func:`iter_chunks`.

    Attributes
    ----------
    start
        Zero-based data row of the file where the chunk starts.
    table
        The rows as an OBSERVED table; unreadable values are null in it.
    bad_column
        Per row: the file column of its first unreadable value, ``""`` if none.
    bad_detail
        Per row: what could not be read, ``""`` if nothing.
    id_known
        Per row: whether ``OBJECT_ID`` could be formed (False where an id column
        held the unreadable value; the table then holds a placeholder).
    """

    start: int
    table: pa.Table
    bad_column: np.ndarray
    bad_detail: np.ndarray
    id_known: np.ndarray


def iter_chunks(
    path: str | Path,
    columns: ColumnMap = ColumnMap(),
    chunk_rows: int = 100_000,
    *,
    bad_values: Literal["raise", "null"] = "null",
) -> Iterator[CatalogueChunk]:
    """Yield the file's rows chunk by chunk, with the rows whose values are unreadable.

    Parameters
    ----------
    path
        The catalogue file.
    columns
        Where each quantity is in the file.
    chunk_rows
        Rows per chunk (the last one fewer).
    bad_values
        ``"null"``: a value that cannot be read as its column's type is nulled
        and its row reported in :attr:`CatalogueChunk.bad_column`; ``"raise"``:
        it raises :class:`InputError` naming file, column and row.

    Raises
    ------
    InputError
        On a structural problem (missing column, ragged row, damaged file, wrong
        array length, a header line repeated in the data).
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    src = _open(Path(path), columns)
    plan = _plan(src, columns)
    needed = list(dict.fromkeys(n for v in plan.values() for n in _listify(v)))
    start = 0
    for raw in _rechunk(src.chunks(needed, chunk_rows), chunk_rows):
        chunk = _Chunk(raw, src, start, lenient=bad_values == "null")
        table = chunk.convert(plan)
        yield CatalogueChunk(start, table, chunk.bad_column, chunk.bad_detail, chunk.id_known)
        start += raw.num_rows


def iter_catalogue(
    path: str | Path, columns: ColumnMap = ColumnMap(), chunk_rows: int = 100_000
) -> Iterator[tuple[int, pa.Table]]:
    """Yield ``(first_row_index_in_file, table)`` chunk by chunk.

    Each table conforms to :data:`~jpasbatch.catalog.schemas.OBSERVED` and has
    ``chunk_rows`` rows, the last one fewer. A file without data rows yields
    nothing. Raises :class:`InputError` on any structural problem and on any
    value that cannot be read (:func:`iter_chunks` reports those rows instead).
    """
    for chunk in iter_chunks(path, columns, chunk_rows, bad_values="raise"):
        yield chunk.start, chunk.table


def count_rows(path: str | Path, columns: ColumnMap = ColumnMap()) -> int:
    """Number of data rows: from metadata for Parquet and FITS, one pass for CSV."""
    return _open(Path(path), columns).count()


def read_catalogue(path: str | Path, columns: ColumnMap = ColumnMap()) -> pa.Table:
    """The whole catalogue as one OBSERVED table (empty if the file has no rows)."""
    chunks = [t for _, t in iter_catalogue(path, columns)]
    return pa.concat_tables(chunks) if chunks else OBSERVED.empty_table()


# --------------------------------------------------------------------- sources
# Each source has ``path``, ``names`` (the file's columns), ``count()`` and
# ``chunks(needed, chunk_rows)``: batches of the needed columns, in the file's types.


def _open(path: Path, columns: ColumnMap) -> _Parquet | _Csv | _Fits:
    """Sniff the format from the first bytes and open the file as a source."""
    if not path.is_file():
        raise InputError("file not found", path=path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path=path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gzipped else open)(path, "rb") as f:
            head = f.read(512)
    except (OSError, EOFError) as e:
        raise InputError(f"corrupt gzip stream: {e}", path=path) from e
    if not head:
        raise InputError("empty file (0 bytes once decompressed)", path=path)
    fmt = "csv" if b"\0" not in head else None  # text can only be CSV
    fmt = "parquet" if head.startswith(b"PAR1") else "fits" if head[:9] == b"SIMPLE  =" else fmt
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    claimed = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None or claimed not in (None, fmt) or (fmt == "parquet" and gzipped):
        got = f"{'gzipped ' * gzipped}{fmt or 'binary'}"
        raise InputError(f"not a recognisable catalogue: {got} content", path=path)
    return {"parquet": _Parquet, "csv": _Csv, "fits": _Fits}[fmt](path, gzipped, columns)


class _Parquet:
    def __init__(self, path: Path, gzipped: bool, columns: ColumnMap) -> None:
        self.path = path
        try:
            self.file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"corrupt or truncated Parquet file: {e}", path=path) from e
        self.names = self.file.schema_arrow.names

    def count(self) -> int:
        return self.file.metadata.num_rows

    def chunks(self, needed: list[str], chunk_rows: int) -> Iterator[pa.RecordBatch]:
        try:
            yield from self.file.iter_batches(batch_size=chunk_rows, columns=needed)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"corrupt or truncated Parquet file: {e}", path=self.path) from e


class _Csv:
    def __init__(self, path: Path, gzipped: bool, columns: ColumnMap) -> None:
        self.path, self.gzipped, self.comments = path, gzipped, 0
        try:
            with (gzip.open if gzipped else open)(path, "rb") as f:
                while (line := f.readline()).startswith(b"#"):  # the archive's ADQL query
                    self.comments += 1
                self.header_only = not f.read(1)
            self.names = next(csv.reader([line.decode("utf-8-sig")]), [])
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise InputError(f"unreadable CSV header: {e}", path=path) from e
        if not self.names:
            raise InputError("no header line", path=path)

    def count(self) -> int:
        return sum(b.num_rows for b in self.chunks(self.names[:1], 1))

    def chunks(self, needed: list[str], chunk_rows: int) -> Iterator[pa.RecordBatch]:
        if self.header_only:  # pyarrow fails on a lone header without a newline
            return
        ragged: list[pcsv.InvalidRow] = []
        stream = pa.input_stream(str(self.path), compression="gzip" if self.gzipped else None)
        try:
            # Single-threaded, so that the parser knows line numbers for ragged rows.
            # Every column as text, converted later so that a bad value is found by row;
            # only empty fields are null, so "nan" stays NaN.
            yield from pcsv.open_csv(
                stream,
                pcsv.ReadOptions(skip_rows=self.comments, use_threads=False),
                pcsv.ParseOptions(invalid_row_handler=lambda r: ragged.append(r) or "error"),
                pcsv.ConvertOptions(
                    column_types=dict.fromkeys(needed, pa.string()),
                    include_columns=needed,
                    null_values=[""],
                    strings_can_be_null=True,
                ),
            )
        except (pa.ArrowException, OSError, EOFError) as e:
            if not ragged:
                raise InputError(f"corrupt or truncated CSV file: {e}", path=self.path) from e
            r = ragged[0]  # r.number: 1-based line in the file
            row = None if r.number is None else r.number - self.comments - 2
            why = f"ragged row: {r.actual_columns} fields, the header has {r.expected_columns}"
            raise InputError(why, path=self.path, row=row) from e
        finally:
            stream.close()


class _Fits:
    def __init__(self, path: Path, gzipped: bool, columns: ColumnMap) -> None:
        self.path, self.gzipped, self.key = path, gzipped, columns.hdu
        with self._hdu() as hdu:
            self.names, self.rows = list(hdu.columns.names), int(hdu.header["NAXIS2"])

    def count(self) -> int:
        return self.rows

    @contextlib.contextmanager
    def _hdu(self) -> Iterator[fits.BinTableHDU]:
        size = self.path.stat().st_size
        damaged = f"corrupt or truncated FITS file ({size} bytes)"
        try:
            with warnings.catch_warnings():  # damage is reported below, as InputError
                warnings.simplefilter("ignore", AstropyWarning)
                hdul = fits.open(self.path, memmap=True)
                hdul.readall()  # every header now (the data stay memory-mapped)
        except Exception as e:  # astropy raises many types on damaged files
            raise InputError(f"{damaged}: {e}", path=self.path) from e
        with hdul:
            try:
                tables = [i for i, h in enumerate(hdul) if isinstance(h, _FITS_TABLES)]
                i = tables[0] if self.key is None else hdul.index_of(self.key)
                hdu, end = hdul[i], hdul.fileinfo(i)["datLoc"] + hdul[i].size
            except (KeyError, IndexError) as e:
                # astropy drops an HDU whose header is cut short; FITS is whole 2880-byte blocks
                why = damaged if size % 2880 and not self.gzipped else "no such table HDU"
                raise InputError(
                    why, path=self.path, column=None if self.key is None else str(self.key)
                ) from e
            if not isinstance(hdu, _FITS_TABLES):
                raise InputError("HDU is not a table", path=self.path, column=str(self.key))
            if not self.gzipped and size < end:
                raise InputError(f"{damaged}: the table needs {end} bytes", path=self.path)
            yield hdu

    def chunks(self, needed: list[str], chunk_rows: int) -> Iterator[pa.Table]:
        with self._hdu() as hdu:
            for a in range(0, self.rows, chunk_rows):
                try:  # a row slice of the memory-mapped table reads only its own pages
                    part = hdu.data[a : a + chunk_rows]
                    cols = {name: part.field(name) for name in needed}
                except (OSError, ValueError, IndexError, TypeError, EOFError) as e:
                    raise InputError(f"corrupt FITS data: {e}", path=self.path, row=a) from e
                yield pa.table({name: _fits_arrow(col) for name, col in cols.items()})


def _fits_arrow(col: np.ndarray) -> pa.Array:
    """A FITS column slice (big-endian, maybe a vector per row) as an Arrow array."""
    if col.dtype.kind == "O":  # variable-length arrays
        return pa.array([np.asarray(v).tolist() for v in col])
    native = np.asarray(col).astype(str if col.dtype.kind in "SU" else col.dtype.newbyteorder("="))
    if native.ndim == 1:
        return pa.array(native)
    flat = pa.array(native.reshape(len(native), -1).ravel())
    return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(native.shape[1:])))


def _rechunk(batches: Iterable[pa.RecordBatch | pa.Table], chunk_rows: int) -> Iterator[pa.Table]:
    """Regroup batches of any size into tables of ``chunk_rows`` rows (the last fewer)."""
    pending: list[pa.Table] = []
    have = 0
    for b in batches:
        if b.num_rows:
            pending.append(pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b)
            have += b.num_rows
        while have >= chunk_rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, chunk_rows)
            pending, have = [whole.slice(chunk_rows)], have - chunk_rows
    if have:
        yield pa.concat_tables(pending)


# ------------------------------------------------------------------ conversion


def _plan(src: _Parquet | _Csv | _Fits, cm: ColumnMap) -> dict[str, str | list[str] | None]:
    """The file column(s) feeding each quantity: OBSERVED names, ``FLUX``, ``RELERR``, ``ID``."""
    names = src.names
    listing = ", ".join(names[:40]) + (f", ... ({len(names) - 40} more)" * (len(names) > 40))

    def find(name: str) -> str | None:
        if name in names:
            return name
        folded = [n for n in names if n.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def need(name: str) -> str:
        if (got := find(name)) is None:
            raise InputError(f"missing column; the file has: {listing}", path=src.path, column=name)
        return got

    def photometry(name: str) -> str | list[str]:
        per = [find(n) for n in cm.per_band(name)]
        if (got := find(name)) is not None or None not in per:
            return got or per
        column = name if per.count(None) == NBANDS else cm.per_band(name)[per.index(None)]
        why = f"missing column: no array column {name!r} nor per-band columns"
        raise InputError(
            f"{why} {cm.band_pattern!r}; the file has: {listing}", path=src.path, column=column
        )

    wanted = (cm.tile_id, cm.number, cm.ra, cm.dec, cm.flags, cm.mask_flags, cm.class_star)
    plan: dict = {k: need(n) for k, n in zip(_META, wanted, strict=True)}
    plan |= {"FLUX": photometry(cm.flux), "RELERR": photometry(cm.relerr)}
    return plan | {"ID": cm.object_id and need(cm.object_id)}


class _Chunk:
    """One raw chunk being converted; errors are located at rows of the file.

    With ``lenient``, unreadable values are nulled and their rows recorded in
    ``bad_column`` / ``bad_detail`` (the first problem of each row) instead of raising.
    """

    def __init__(
        self, raw: pa.Table, src: _Parquet | _Csv | _Fits, start: int, lenient: bool = False
    ) -> None:
        self.raw, self.src, self.start, self.lenient = raw, src, start, lenient
        self.bad_column = np.full(raw.num_rows, "", dtype=object)
        self.bad_detail = np.full(raw.num_rows, "", dtype=object)
        self.id_known = np.ones(raw.num_rows, bool)
        #: file column -> rows nulled in it because a value could not be read
        self.nulled: dict[str, np.ndarray] = {}

    def error(self, message: str, column: str, i: int = 0) -> InputError:
        return InputError(message, path=self.src.path, column=column, row=self.start + i)

    def convert(self, plan: dict) -> pa.Table:
        """The chunk as an OBSERVED table."""
        out = {k: self.scalar(plan[k], OBSERVED.field(k).type) for k in _META if "FLAGS" not in k}
        out |= {k: self.flags(plan[k]) for k in ("FLAGS", "MASK_FLAGS")}
        id_columns = [plan["ID"]] if plan["ID"] else [plan["TILE_ID"], plan["NUMBER"]]
        if plan["ID"]:
            oid = self.scalar(plan["ID"], pa.int64())
        for name in id_columns:  # rows whose id could not be read (rejected anyway)
            if name in self.nulled:
                self.id_known &= ~self.nulled[name]
        if plan["ID"]:
            if (null := oid.is_null().to_numpy(zero_copy_only=False) & self.id_known).any():
                raise self.error("null object id", plan["ID"], int(np.flatnonzero(null)[0]))
            oid = pc.fill_null(oid, -1)  # a placeholder where the id could not be read
        else:
            tile, number = self.not_null(plan, out, "TILE_ID"), self.not_null(plan, out, "NUMBER")
            number = np.where(self.id_known, number, 0)
            if (bad := np.flatnonzero((number < 0) | (number >= MAX_NUMBER))).size:
                why = f"NUMBER {number[bad[0]]} outside [0, {MAX_NUMBER}), OBJECT_ID not unique"
                raise self.error(why, plan["NUMBER"], int(bad[0]))
            oid = pa.array(tile * MAX_NUMBER + number)
        photometry = [*self.bands(plan["FLUX"]), *self.bands(plan["RELERR"])]
        return pa.Table.from_arrays([oid, *(out[k] for k in _META), *photometry], schema=OBSERVED)

    def not_null(self, plan: dict, out: dict, key: str) -> np.ndarray:
        null = out[key].is_null().to_numpy(zero_copy_only=False) & self.id_known
        if null.any():
            i = int(np.flatnonzero(null)[0])
            raise self.error("null value, cannot form OBJECT_ID", plan[key], i)
        return pc.fill_null(out[key], 0).to_numpy().astype(np.int64)

    def column(self, name: str) -> pa.Array:
        col = self.raw.column(name)
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()

    def cast(self, arr: pa.Array, target: pa.DataType, name: str, per_row: int = 1) -> pa.Array:
        """Cast ``arr`` (``per_row`` values per file row) to ``target``, ints exactly."""
        if _is_text(arr.type):
            arr = pc.utf8_trim_whitespace(arr)
        elif arr.type == target:  # nothing to convert: skip two passes over the values
            return arr
        exact = not pa.types.is_floating(target)  # floats may round, ints must not change
        wide = pa.int64() if exact else pa.float64()

        def convert(a: pa.Array) -> pa.Array:
            return pc.cast(pc.cast(a, wide, safe=exact), target, safe=exact)

        try:
            return convert(arr)
        except _CAST_ERRORS as e:
            err = e
        if self.lenient:
            return self.null_unreadable(arr, convert, target, name, per_row)
        lo, hi = 0, len(arr)  # bisect for the first value that does not convert
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                convert(arr[:mid])
                lo = mid
            except _CAST_ERRORS:
                hi = mid
        value = arr[hi - 1].as_py()
        why = f"cannot read {repr(value)[:80]} ({arr.type}) as {target}: {str(err)[:200]}"
        if str(value) in self.src.names:
            why = f"a header line repeated in the data (value {value!r})"
        raise self.error(why, name, (hi - 1) // per_row)

    def null_unreadable(
        self, arr: pa.Array, convert, target: pa.DataType, name: str, per_row: int
    ) -> pa.Array:
        """``convert(arr)`` with the values it cannot convert nulled and their rows recorded.

        The failing values are found by halving the failing slices: a few bad values
        cost a few dozen casts, not one Python call per value.
        """
        bad: list[int] = []

        def search(lo: int, hi: int) -> None:
            try:
                convert(arr[lo:hi])
            except _CAST_ERRORS:
                if hi - lo == 1:
                    bad.append(lo)
                else:
                    mid = (lo + hi) // 2
                    search(lo, mid)
                    search(mid, hi)

        search(0, len(arr))
        for i in bad:
            value = arr[i].as_py()
            if str(value) in self.src.names:  # structural, not a bad value: stop
                raise self.error(f"a header line repeated in the data (value {value!r})", name,
                                 i // per_row)  # fmt: skip
            row = i // per_row
            if not self.bad_column[row]:
                self.bad_column[row] = name
                what = f"cannot read {repr(value)[:80]} as {target}"
                self.bad_detail[row] = f"column {name!r}: {what}"
        mask = np.zeros(len(arr), bool)
        mask[bad] = True
        rows = np.zeros(len(arr) // per_row, bool)
        rows[np.asarray(bad, int) // per_row] = True
        self.nulled[name] = self.nulled.get(name, False) | rows
        return convert(pc.if_else(pa.array(mask), pa.scalar(None, arr.type), arr))

    def scalar(self, name: str, target: pa.DataType) -> pa.Array:
        return self.cast(self.column(name), target, name)  # an array column fails at row 0

    def matrix(self, name: str, target: pa.DataType) -> np.ndarray:
        """A 60-element array column as an (n, 60) numpy array; nulls in it become NaN."""
        arr = self.column(name)
        if _is_text(arr.type):  # "{1,2,...}" as the archive writes it, or "[1, 2, ...]"
            arr = pc.split_pattern(pc.utf8_trim(arr, "{}[] \t"), ",")
        if not _is_list(arr.type):
            raise self.error(f"one value per row, expected arrays of {NBANDS}", name)
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy()
        if (bad := np.flatnonzero(lengths != NBANDS)).size:
            why = f"array of {lengths[bad[0]]} values, expected {NBANDS}"
            raise self.error(why, name, int(bad[0]))
        values = self.cast(arr.flatten(), target, name, per_row=NBANDS)
        return values.to_numpy(zero_copy_only=False).reshape(-1, NBANDS)

    def flags(self, name: str) -> pa.Array:
        """A flag column, OR-ed over the bands if it holds arrays."""
        arr = self.column(name)
        if _is_list(arr.type) or (
            _is_text(arr.type) and pc.any(pc.match_substring_regex(arr, r"^\s*[\[{]")).as_py()
        ):
            mat = np.nan_to_num(self.matrix(name, pa.int64()))  # null bands (NaN) set no bit
            arr = pa.array(np.bitwise_or.reduce(mat.astype(np.int64), axis=1))
        return self.cast(arr, pa.int32(), name)

    def bands(self, source: str | list[str]) -> list[pa.Array]:
        """Per-band float32 arrays, from an array column or from per-band columns."""
        if isinstance(source, list):
            return [self.cast(self.column(n), pa.float32(), n) for n in source]
        return [pa.array(row) for row in np.ascontiguousarray(self.matrix(source, pa.float32()).T)]


def _listify(x: str | list[str] | None) -> list[str]:
    return [] if x is None else [x] if isinstance(x, str) else x


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


# --------------------------------------------------------------------- writing


def write_archive_like(
    path: str | Path, table: pa.Table, layout: str = "array", fmt: str = "parquet"
) -> Path:
    """Write an OBSERVED table in the archive layout, for tests and the survey emulator.

    Parameters
    ----------
    path
        Output file; a ``.gz`` suffix gzips FITS and CSV.
    table
        A table with the OBSERVED columns. OBJECT_ID is not written (readers form
        it from TILE_ID and NUMBER); null floats are written as NaN.
    layout
        ``"array"``: FLUX_APER_COR_3_0 and FLUX_RELERR_APER_COR_3_0 as 60-element
        arrays; ``"per_band"``: one ``<column>_<band>`` column per band.
    fmt
        ``"parquet"``, ``"fits"`` or ``"csv"`` (a ``#SELECT`` line, a quoted header,
        arrays as ``"{v1,v2,...}"``, floats as shortest round-trip text, so exact).

    Returns
    -------
    Path
        ``path``.
    """
    path, cm = Path(path), ColumnMap()
    gz = path.suffix.lower() == ".gz"
    if layout not in ("array", "per_band") or fmt not in ("parquet", "fits", "csv"):
        raise ValueError(f"unknown layout {layout!r} or format {fmt!r}")
    if gz and fmt == "parquet":
        raise ValueError("gzipped Parquet is not supported")
    table = conform(table, OBSERVED)

    def col(name: str) -> pa.Array:  # a null float is written as NaN, as FITS must
        arr = table.column(name).combine_chunks()
        return pc.fill_null(arr, pa.scalar(np.nan, arr.type)) if arr.type in _FLOATS else arr

    out = {k: col(k) for k in _META}
    for name, column in ((cm.flux, flux_column), (cm.relerr, relerr_column)):
        per = [col(column(b)) for b in BANDS]
        if layout == "per_band":
            out |= dict(zip(cm.per_band(name), per, strict=True))
        else:
            mat = np.column_stack([c.to_numpy() for c in per])
            out[name] = pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), NBANDS)
    if fmt == "parquet":
        pq.write_table(pa.table(out), path)
    elif fmt == "fits":
        codes = {pa.int32(): "J", pa.float64(): "D", pa.float32(): "E"}
        cols = []
        for name, arr in out.items():
            if arr.null_count and pa.types.is_integer(arr.type):
                raise ValueError(f"FITS cannot hold the nulls of integer column {name}")
            if pa.types.is_fixed_size_list(arr.type):
                arr = arr.flatten().to_numpy().reshape(-1, NBANDS)
                cols.append(fits.Column(name, f"{NBANDS}E", array=arr))
            else:
                cols.append(fits.Column(name, codes[arr.type], array=arr.to_numpy()))
        hdu = fits.BinTableHDU.from_columns(cols, name="CATALOGUE")
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)  # .gz: gzipped
    else:
        for name in [n for n, arr in out.items() if pa.types.is_fixed_size_list(arr.type)]:
            text = pc.cast(out[name].flatten(), pa.string())  # shortest round-trip text
            offsets = pa.array(np.arange(0, len(text) + 1, NBANDS, dtype=np.int32))
            joined = pc.binary_join(pa.ListArray.from_arrays(offsets, text), ",")
            out[name] = pc.binary_join_element_wise("{", joined, "}", "")
        with pa.output_stream(str(path), compression="gzip" if gz else None) as sink:
            sink.write(f"#SELECT {', '.join(out)} FROM {ARCHIVE_TABLE}\n".encode())
            pcsv.write_csv(pa.table(out), sink)
    return path
