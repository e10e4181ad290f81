"""Tests of the streaming catalogue readers: formats, layouts, chunking, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jpasbatch.catalog.readers import (
    ColumnMap,
    count_rows,
    iter_catalogue,
    iter_chunks,
    read_catalogue,
    write_archive_like,
)
from jpasbatch.catalog.schemas import BANDS, OBSERVED, flux_column, relerr_column
from jpasbatch.core.errors import InputError

FORMATS = ["parquet", "fits", "csv"]
FLUX, RELERR = "FLUX_APER_COR_3_0", "FLUX_RELERR_APER_COR_3_0"


def observed(n: int = 120, seed: int = 0, tile: int = 2241) -> pa.Table:
    """A random OBSERVED table, with NaN fluxes as the archive has them."""
    rng = np.random.default_rng(seed)
    number = rng.permutation(n).astype(np.int32) + 1
    flux = (rng.lognormal(0.0, 1.0, (n, 60)) * 1e-17).astype(np.float32)
    flux[rng.random((n, 60)) < 0.05] = np.nan
    relerr = rng.uniform(0.01, 2.0, (n, 60)).astype(np.float32)
    cols = {
        "OBJECT_ID": tile * 1_000_000 + number.astype(np.int64),
        "TILE_ID": np.full(n, tile, np.int32),
        "NUMBER": number,
        "ALPHA_J2000": rng.uniform(210.0, 220.0, n),
        "DELTA_J2000": rng.uniform(50.0, 55.0, n),
        "FLAGS": rng.integers(0, 8, n).astype(np.int32),
        "MASK_FLAGS": rng.integers(0, 2, n).astype(np.int32),
        "CLASS_STAR": rng.random(n).astype(np.float32),
    }
    cols |= {flux_column(b): flux[:, i] for i, b in enumerate(BANDS)}
    cols |= {relerr_column(b): relerr[:, i] for i, b in enumerate(BANDS)}
    return pa.Table.from_pydict(cols, schema=OBSERVED)


def assert_same(got: pa.Table, want: pa.Table) -> None:
    """Same schema (with metadata) and same values, NaN matching NaN."""
    assert got.schema.equals(want.schema, check_metadata=True)
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy(), err_msg=name)


def raw_columns(n: int = 40, seed: int = 1) -> dict[str, np.ndarray]:
    """Archive columns with array photometry, for hand-built (possibly broken) files."""
    t = observed(n, seed)
    cols = {k: t[k].to_numpy().copy() for k in OBSERVED.names[1:8]}
    cols[FLUX] = np.column_stack([t[flux_column(b)].to_numpy() for b in BANDS])
    cols[RELERR] = np.column_stack([t[relerr_column(b)].to_numpy() for b in BANDS])
    return cols


def is_array(v: object) -> bool:
    """A column given as a list of rows or a 2-D array holds an array per row."""
    return isinstance(v, list) or np.ndim(v) > 1


def write_raw(path: Path, cols: dict[str, object], fmt: str) -> Path:
    """Write columns as given: 2-D arrays or lists of arrays become array columns.

    CSV arrays are written JSON-style, ``"[1.0, 2.0]"``, the other accepted syntax.
    """
    if fmt == "parquet":
        pq.write_table(
            pa.table({k: pa.array(list(v)) if is_array(v) else v for k, v in cols.items()}), path
        )
    elif fmt == "fits":
        codes = {"i": "J", "f": "E", "U": "A20"}
        fcols = []
        for k, v in cols.items():
            v = np.asarray(v)
            code = "D" if v.dtype == np.float64 else codes[v.dtype.kind]
            fcols.append(fits.Column(k, f"{v.shape[1]}{code}" if v.ndim > 1 else code, array=v))
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(fcols)]).writeto(path)
    else:
        n = len(next(iter(cols.values())))
        lines = [",".join(f'"{k}"' for k in cols)]
        for i in range(n):
            cells = [
                f'"[{", ".join(map(repr, np.asarray(v[i]).tolist()))}]"'
                if np.ndim(v[i])
                else str(v[i])
                for v in cols.values()
            ]
            lines.append(",".join(cells))
        path.write_text("\n".join(lines) + "\n")
    return path


def read_all(path: Path, columns: ColumnMap | None = None, chunk_rows: int = 7) -> pa.Table:
    """Read in small chunks, so that bad rows sit in a later chunk."""
    chunks = iter_catalogue(path, columns or ColumnMap(), chunk_rows)
    return pa.concat_tables([t for _, t in chunks])


def where(path: Path, column: str | None = None, row: int | None = None) -> str:
    """The start of an InputError message, as a regular expression."""
    parts = [f"file {re.escape(str(path))}"]
    parts += [] if column is None else [f"column {re.escape(repr(column))}"]
    parts += [] if row is None else [f"row {row}"]
    return ", ".join(parts) + ":"


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    ("fmt", "gz"), [("parquet", ""), ("fits", ""), ("fits", ".gz"), ("csv", ""), ("csv", ".gz")]
)
@pytest.mark.parametrize("layout", ["array", "per_band"])
def test_round_trip(tmp_path, fmt, gz, layout):
    table = observed()
    path = write_archive_like(tmp_path / f"cat.{fmt}{gz}", table, layout=layout, fmt=fmt)
    if gz:
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert count_rows(path) == table.num_rows
    assert_same(read_catalogue(path), table)


def test_csv_layout_is_archive_like(tmp_path):
    path = write_archive_like(tmp_path / "cat.csv", observed(5), layout="array", fmt="csv")
    first, header, row = path.read_text().splitlines()[:3]
    assert first.startswith("#SELECT TILE_ID, NUMBER, ALPHA_J2000")
    assert header.startswith('"TILE_ID","NUMBER","ALPHA_J2000"')
    assert re.search(r',"\{[^,{}]+(,[^,{}]+){59}\}",', row)


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunking(tmp_path, fmt):
    table = observed(200)
    path = write_archive_like(tmp_path / f"cat.{fmt}", table, layout="array", fmt=fmt)
    chunks = list(iter_catalogue(path, chunk_rows=37))
    assert [start for start, _ in chunks] == [0, 37, 74, 111, 148, 185]
    assert [t.num_rows for _, t in chunks] == [37] * 5 + [15]
    assert_same(pa.concat_tables([t for _, t in chunks]), table)


@pytest.mark.parametrize("fmt", FORMATS)
def test_flag_arrays_are_or_reduced(tmp_path, fmt):
    cols = raw_columns()
    rng = np.random.default_rng(5)
    flags = (1 << rng.integers(0, 8, (40, 60))) * (rng.random((40, 60)) < 0.05)
    cols["FLAGS"], cols["MASK_FLAGS"] = flags.astype(np.int32), np.zeros((40, 60), np.int32)
    cols["MASK_FLAGS"][3, 59] = 16
    got = read_all(write_raw(tmp_path / f"cat.{fmt}", cols, fmt))
    want = []
    for row in flags:
        acc = 0
        for value in row:
            acc |= int(value)
        want.append(acc)
    assert got["FLAGS"].to_pylist() == want
    assert got["MASK_FLAGS"].to_pylist() == [16 if i == 3 else 0 for i in range(40)]
    assert got["FLAGS"].type == pa.int32()


def test_variable_length_list_columns(tmp_path):
    cols = raw_columns()
    got = read_all(write_raw(tmp_path / "cat.parquet", cols, "parquet"))  # list<float>
    np.testing.assert_array_equal(got["FLUX_J0660"].to_numpy(), cols[FLUX][:, BANDS.index("J0660")])


def test_column_map_renamed(tmp_path):
    table = observed(30)
    src = {"tile": "TILE_ID", "num": "NUMBER", "ra": "ALPHA_J2000", "dec": "DELTA_J2000"}
    src |= {"fl": "FLAGS", "mfl": "MASK_FLAGS", "cs": "CLASS_STAR"}
    cols = {k: table[v].to_numpy() for k, v in src.items()}
    cols["uid"] = table["OBJECT_ID"].to_numpy() + 7  # an id of the file's own
    cols |= {f"{b}:f": table[flux_column(b)].to_numpy() for b in BANDS}
    cols |= {f"{b}:e": table[relerr_column(b)].to_numpy() for b in BANDS}
    path = tmp_path / "renamed.parquet"
    pq.write_table(pa.table(cols), path)
    cmap = {"tile_id": "tile", "number": "num", "ra": "ra", "dec": "dec", "flags": "fl"}
    cmap |= {"mask_flags": "mfl", "class_star": "cs", "object_id": "uid"}
    cmap |= {"flux": "f", "relerr": "e", "band_pattern": "{band}:{column}"}
    got = read_catalogue(path, ColumnMap.from_dict(cmap))
    want = table.set_column(0, OBSERVED.field(0), pa.array(cols["uid"]))
    assert_same(got, want)
    with pytest.raises(InputError, match="column 'fluxx'"):
        ColumnMap.from_dict({"fluxx": "f"})


def test_names_match_case_insensitively_and_fits_hdu_by_name(tmp_path):
    cols = {k.lower(): v for k, v in raw_columns().items()}
    path = write_raw(tmp_path / "cat.fits", cols, "fits")
    with fits.open(path, mode="update") as hdul:
        hdul[1].name = "OBJECTS"
        hdul.insert(1, fits.BinTableHDU.from_columns([fits.Column("X", "E", array=np.zeros(3))]))
    assert count_rows(path, ColumnMap(hdu="OBJECTS")) == 40
    got = read_catalogue(path, ColumnMap(hdu="OBJECTS"))
    np.testing.assert_array_equal(got["ALPHA_J2000"].to_numpy(), cols["alpha_j2000"])
    with pytest.raises(InputError, match=where(path, "TILE_ID")):
        read_catalogue(path)  # the first table HDU is the wrong one


@pytest.mark.parametrize(
    ("fmt", "layout"), [("parquet", "array"), ("csv", "per_band"), ("fits", "array")]
)
def test_bad_values_pass_through(tmp_path, fmt, layout):
    table = observed(50)
    edits = {"ALPHA_J2000": (3, np.nan), "DELTA_J2000": (4, -np.inf)}
    edits |= {"FLUX_J0500": (5, np.inf), "FLUX_RELERR_J0600": (6, -0.25)}
    edits |= {k: (8, table[k][7].as_py()) for k in ("OBJECT_ID", "TILE_ID", "NUMBER")}
    for name, (row, value) in edits.items():
        values = table[name].to_numpy().copy()
        values[row] = value
        i = table.schema.get_field_index(name)
        table = table.set_column(i, OBSERVED.field(i), pa.array(values, OBSERVED.field(i).type))
    got = read_all(write_archive_like(tmp_path / f"cat.{fmt}", table, layout=layout, fmt=fmt))
    assert np.isnan(got["ALPHA_J2000"][3].as_py())  # NaN, not null
    assert got["DELTA_J2000"][4].as_py() == -np.inf
    assert got["FLUX_J0500"][5].as_py() == np.inf
    assert got["FLUX_RELERR_J0600"][6].as_py() == -0.25
    assert got["OBJECT_ID"][8] == got["OBJECT_ID"][7]
    assert_same(got, table)


def test_header_only_csv_is_an_empty_catalogue(tmp_path):
    path = write_archive_like(tmp_path / "cat.csv", observed(0), fmt="csv")
    assert len(path.read_text().splitlines()) == 2
    assert list(iter_catalogue(path)) == []
    assert count_rows(path) == 0
    assert read_catalogue(path).schema.equals(OBSERVED, check_metadata=True)
    bare = tmp_path / "bare.csv"  # no newline after the header
    bare.write_text(path.read_text().splitlines()[1])
    assert read_catalogue(bare).num_rows == 0


# ------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=where(tmp_path / "nope.csv") + " file not found"):
        count_rows(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=where(path) + r" empty file \(0 bytes\)"):
        read_catalogue(path)


def test_unrecognisable_format(tmp_path):
    path = tmp_path / "noise.dat"
    path.write_bytes(
        np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes() + b"\0"
    )
    with pytest.raises(InputError, match=where(path) + " not a recognisable catalogue"):
        read_catalogue(path)
    text = tmp_path / "text.parquet"
    text.write_text("TILE_ID,NUMBER\n1,2\n")
    with pytest.raises(InputError, match=where(text) + " not a recognisable catalogue.*csv"):
        read_catalogue(text)


def test_missing_column(tmp_path):
    cols = raw_columns()
    del cols["DELTA_J2000"]
    path = write_raw(tmp_path / "cat.parquet", cols, "parquet")
    with pytest.raises(
        InputError, match=where(path, "DELTA_J2000") + " missing column; the file has: TILE_ID"
    ):
        read_catalogue(path)


def test_missing_per_band_column(tmp_path):
    table = observed(20).drop_columns([flux_column("J0700")])
    path = tmp_path / "cat.parquet"
    names = [
        f"{FLUX}_{c[5:]}" if c.startswith("FLUX_") and "RELERR" not in c else c
        for c in table.column_names
    ]
    pq.write_table(table.rename_columns(names), path)
    with pytest.raises(InputError, match=where(path, f"{FLUX}_J0700") + " missing column"):
        read_catalogue(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_dtype(tmp_path, fmt):
    cols = raw_columns()
    cols["ALPHA_J2000"] = cols["ALPHA_J2000"].astype(str)
    cols["ALPHA_J2000"][23] = "abc"
    path = write_raw(tmp_path / f"cat.{fmt}", cols, fmt)
    with pytest.raises(InputError, match=where(path, "ALPHA_J2000", 23) + " cannot read 'abc'"):
        read_all(path)


def test_non_integer_number(tmp_path):
    cols = raw_columns()
    cols["NUMBER"] = cols["NUMBER"] + 0.5
    path = write_raw(tmp_path / "cat.parquet", cols, "parquet")
    with pytest.raises(InputError, match=where(path, "NUMBER", 0) + r" cannot read \d+\.5 "):
        read_all(path)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_wrong_array_length(tmp_path, fmt):
    cols = raw_columns()
    cols[RELERR] = list(cols[RELERR])
    cols[RELERR][17] = cols[RELERR][17][:59]
    path = write_raw(tmp_path / f"cat.{fmt}", cols, fmt)
    with pytest.raises(
        InputError, match=where(path, RELERR, 17) + " array of 59 values, expected 60"
    ):
        read_all(path)


def test_wrong_vector_length_fits(tmp_path):
    cols = raw_columns()
    cols[FLUX] = cols[FLUX][:, :59]
    path = write_raw(tmp_path / "cat.fits", cols, "fits")
    with pytest.raises(InputError, match=where(path, FLUX, 0) + " array of 59 values"):
        read_all(path)


def test_truncated_parquet(tmp_path):
    path = write_archive_like(tmp_path / "cat.parquet", observed(), fmt="parquet")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=where(path) + " corrupt or truncated Parquet"):
        count_rows(path)


@pytest.mark.parametrize("keep", [0.6, 0.0])
def test_truncated_fits(tmp_path, keep):
    path = write_archive_like(tmp_path / "cat.fits", observed(), fmt="fits")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep else data[:4000])  # data / header
    with pytest.raises(InputError, match=re.escape(str(path)) + ".*truncated FITS file"):
        read_catalogue(path)


def test_truncated_gzip_csv(tmp_path):
    path = write_archive_like(tmp_path / "cat.csv.gz", observed(300), fmt="csv")
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(InputError, match=where(path) + " corrupt or truncated CSV"):
        read_catalogue(path)


def test_csv_stray_header_mid_file(tmp_path):
    path = write_archive_like(tmp_path / "cat.csv", observed(40), layout="per_band", fmt="csv")
    lines = path.read_text().splitlines()
    lines.insert(2 + 25, lines[1])  # comment, header, then data row 25 is the header again
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=where(path, "TILE_ID", 25) + " a header line repeated"):
        read_all(path)


def test_csv_ragged_row(tmp_path):
    path = write_archive_like(tmp_path / "cat.csv", observed(40), layout="per_band", fmt="csv")
    lines = path.read_text().splitlines()
    lines[2 + 31] = lines[2 + 31].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        InputError, match=where(path, row=31) + " ragged row: 126 fields, the header has 127"
    ):
        read_all(path)
    with pytest.raises(InputError, match=where(path, row=31)):
        count_rows(path)


@pytest.mark.parametrize("number", [1_000_000, -1])
def test_number_out_of_range(tmp_path, number):
    cols = raw_columns()
    cols["NUMBER"][33] = number
    path = write_raw(tmp_path / "cat.csv", cols, "csv")
    with pytest.raises(InputError, match=where(path, "NUMBER", 33) + f" NUMBER {number} outside"):
        read_all(path)
    # with an id column of its own, NUMBER is not needed for the id
    cols["ID"] = np.arange(40, dtype=np.int64)
    path = write_raw(tmp_path / "with_id.csv", cols, "csv")
    assert read_all(path, ColumnMap(object_id="ID"))["NUMBER"][33].as_py() == number


def test_nulls(tmp_path):
    # an empty CSV field is a null, not an error
    cols = raw_columns()
    cols["ALPHA_J2000"] = cols["ALPHA_J2000"].astype(object)
    cols["ALPHA_J2000"][2] = ""
    got = read_all(write_raw(tmp_path / "cat.csv", cols, "csv"))
    assert got["ALPHA_J2000"].null_count == 1 and got["ALPHA_J2000"][2].as_py() is None
    # the writer stores a null float as NaN, in every format
    table = observed(10)
    table = table.set_column(3, OBSERVED.field(3), pa.array([None] + [1.0] * 9, pa.float64()))
    path = write_archive_like(tmp_path / "cat.parquet", table, layout="per_band")
    assert np.isnan(read_catalogue(path)["ALPHA_J2000"][0].as_py())


@pytest.mark.parametrize("fmt", FORMATS)
def test_unreadable_values_are_reported_by_row(tmp_path, fmt):
    # iter_chunks nulls a value it cannot read and names its row and column; the
    # other rows, and the rest of the file, are read as usual
    cols = raw_columns()
    cols["ALPHA_J2000"] = cols["ALPHA_J2000"].astype(str)
    cols["ALPHA_J2000"][23] = "abc"
    cols["NUMBER"] = cols["NUMBER"].astype(str)
    cols["NUMBER"][5] = "n/a"
    path = write_raw(tmp_path / f"cat.{fmt}", cols, fmt)
    chunks = list(iter_chunks(path, chunk_rows=7))
    bad = np.concatenate([c.bad_column for c in chunks])
    detail = np.concatenate([c.bad_detail for c in chunks])
    id_known = np.concatenate([c.id_known for c in chunks])
    assert np.flatnonzero(bad != "").tolist() == [5, 23]
    assert bad[5] == "NUMBER" and bad[23] == "ALPHA_J2000"
    assert "cannot read 'abc'" in detail[23] and "'n/a'" in detail[5]
    assert np.flatnonzero(~id_known).tolist() == [5]  # no id from an unreadable NUMBER
    table = pa.concat_tables([c.table for c in chunks])
    assert table.num_rows == 40 and table["ALPHA_J2000"][23].as_py() is None
    want = raw_columns()
    np.testing.assert_allclose(
        np.delete(table["ALPHA_J2000"].to_numpy(zero_copy_only=False), 23),
        np.delete(want["ALPHA_J2000"], 23),
        rtol=1e-6 if fmt == "fits" else 0,
    )


def test_unreadable_flux_in_array_column(tmp_path):
    # one bad element of a CSV array marks its row; the array's other bands stay
    cols = raw_columns()
    cols[FLUX] = [list(map(float, r)) for r in cols[FLUX]]
    path = write_raw(tmp_path / "cat.csv", cols, "csv")
    lines = path.read_text().splitlines()
    head, rest = lines[1 + 12].split("[", 1)  # FLUX is the first array column
    lines[1 + 12] = head + "[oops" + rest[rest.index(",") :]
    path.write_text("\n".join(lines) + "\n")
    chunks = list(iter_chunks(path, chunk_rows=16))
    bad = np.concatenate([c.bad_column for c in chunks])
    assert np.flatnonzero(bad != "").tolist() == [12] and bad[12] == FLUX
    with pytest.raises(InputError, match=where(path, FLUX, 12) + " cannot read 'oops'"):
        read_all(path)
