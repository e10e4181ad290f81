"""End-to-end ingestion on a real Dask cluster, read back with lsdb."""

import json
import os
import signal
import subprocess
import sys
import time

import lsdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jpasbatch.catalog.cuts import QualityCuts
from jpasbatch.catalog.ingest import SUMMARY, WORK, ingest
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.catalog.readers import write_archive_like
from jpasbatch.catalog.schemas import OBSERVED, REJECTS


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two archive-layout files (Parquet arrays, CSV per band) with every row defect."""
    d = tmp_path_factory.mktemp("inputs")
    a = random_catalogue(1500, seed=1, bad_fraction=0.04).to_pandas()
    b = random_catalogue(900, seed=2, first_number=5001, bad_fraction=0.04).to_pandas()
    a.loc[10, "ALPHA_J2000"] = np.nan
    a.loc[11, "DELTA_J2000"] = np.inf
    a.loc[12, "FLUX_J0500"] = np.inf
    a.loc[13, "FLUX_RELERR_J0600"] = -0.05
    b.loc[5, "MASK_FLAGS"] = 8
    # rows that take part in the id repeats below must pass every other cut
    flux_cols = [c for c in a.columns if c.startswith("FLUX_") and "RELERR" not in c]
    for frame, rows in ((a, [100, 101, 102]), (b, [6, 7, 20, 21, 22])):
        frame.loc[rows, "FLAGS"] = 0
        frame.loc[rows, flux_cols] = 1e-17
    # ids repeated: inside file b and across files (b's rows 20-22 copy a's rows 100-102)
    for col in ("TILE_ID", "NUMBER", "OBJECT_ID"):
        b.loc[7, col] = b.loc[6, col]
        b.loc[20:22, col] = a.loc[100:102, col].to_numpy()
    pa_a = pa.Table.from_pandas(a, schema=OBSERVED, preserve_index=False)
    pa_b = pa.Table.from_pandas(b, schema=OBSERVED, preserve_index=False)
    files = [
        write_archive_like(d / "tile_a.parquet", pa_a, layout="array", fmt="parquet"),
        write_archive_like(d / "tile_b.csv", pa_b, layout="per_band", fmt="csv"),
    ]
    # unreadable cells: a flux (row 40) and a NUMBER (row 41, so no OBJECT_ID)
    lines = files[1].read_text().splitlines()
    header = [h.strip('"') for h in lines[1].split(",")]
    for row, column, text in ((40, "FLUX_APER_COR_3_0_J0500", "n/a"), (41, "NUMBER", "12x")):
        cells = lines[2 + row].split(",")
        cells[header.index(column)] = text
        lines[2 + row] = ",".join(cells)
    files[1].write_text("\n".join(lines) + "\n")
    return files, pa.concat_tables([pa_a, pa_b])


def run_ingest(files, out, client, **kw):
    kw.setdefault("max_rows_per_partition", 300)
    kw.setdefault("chunk_rows", 500)
    return ingest(files, out, client=client, progress=False, **kw)


@pytest.fixture(scope="module")
def ingested(inputs, client, tmp_path_factory):
    """One ingest with the default cuts, shared by the read-only tests."""
    out = tmp_path_factory.mktemp("ingested") / "cat"
    return out, run_ingest(inputs[0], out, client)


def test_ingest_conserves_rows_and_gives_reasons(inputs, ingested):
    files, table = inputs
    out, summary = ingested
    assert summary.rows_in == 2400 == summary.rows_kept + summary.rows_rejected
    rejects = pq.read_table(out / "rejects")
    assert rejects.schema.equals(REJECTS, check_metadata=False)
    assert rejects.num_rows == summary.rows_rejected
    by_reason = rejects.to_pandas().groupby("REASON").size().to_dict()
    assert by_reason == summary.rejected_by_reason
    for code in (
        "BAD_COORD",
        "BAD_FLUX",
        "NEGATIVE_ERROR",
        "FLAGS",
        "MASK_FLAGS",
        "FEW_BANDS",
        "DUPLICATE_ID",
        "BAD_VALUE",
    ):
        assert by_reason.get(code, 0) > 0, code
    # the rejects point at the exact input rows
    rej = rejects.to_pandas().set_index(["SOURCE_FILE", "SOURCE_ROW"])
    assert rej.loc[(str(files[0]), 10), "REASON"] == "BAD_COORD"
    assert rej.loc[(str(files[0]), 13), "REASON"] == "NEGATIVE_ERROR"
    for row in (7, 20, 21, 22):  # later occurrences go, the first stays
        assert rej.loc[(str(files[1]), row), "REASON"] == "DUPLICATE_ID"
    assert (str(files[1]), 6) not in rej.index
    # a cell that is not a number rejects its row only, naming the column
    for row, column, text in ((40, "FLUX_APER_COR_3_0_J0500", "n/a"), (41, "NUMBER", "12x")):
        assert rej.loc[(str(files[1]), row), "REASON"] == "BAD_VALUE"
        assert f"column '{column}': cannot read '{text}'" in rej.loc[(str(files[1]), row), "DETAIL"]
    assert pd.isna(rej.loc[(str(files[1]), 41), "OBJECT_ID"])
    assert rej.loc[(str(files[1]), 40), "OBJECT_ID"] == table["OBJECT_ID"][1500 + 40].as_py()
    assert not {(str(files[0]), r) for r in (100, 101, 102)} & set(rej.index)
    # each input row is in exactly one place
    kept = lsdb.open_catalog(out).compute()
    assert len(kept) == summary.rows_kept
    assert kept["OBJECT_ID"].is_unique
    assert not (out / WORK).exists()
    assert json.loads((out / SUMMARY).read_text())["rows_kept"] == summary.rows_kept


def test_kept_rows_equal_the_input_values(inputs, client, tmp_path):
    files, table = inputs
    run_ingest(
        files,
        tmp_path / "cat",
        client,
        cuts=QualityCuts(min_bands=0, flags=False, mask_flags=False),
    )
    kept = lsdb.open_catalog(tmp_path / "cat").compute().set_index("OBJECT_ID").sort_index()
    ref = table.to_pandas().drop_duplicates("OBJECT_ID").set_index("OBJECT_ID").loc[kept.index]
    cols = [c for c in OBSERVED.names if c != "OBJECT_ID"]
    # hats-import stores a missing (NaN) band as null; both mean "not observed"
    np.testing.assert_array_equal(
        kept[cols].astype("float64").to_numpy(), ref[cols].astype("float64").to_numpy()
    )


def test_partitions_respect_max_rows_and_carry_provenance(inputs, ingested):
    files, _ = inputs
    out, summary = ingested
    cat = lsdb.open_catalog(out)
    counts = cat.map_partitions(len).compute()
    assert summary.partitions == cat.npartitions > 1
    assert max(counts) <= 300
    prov = json.loads(cat.hc_structure.catalog_info.__pydantic_extra__["jpasbatch_provenance"])
    assert set(prov["inputs"]) == {str(f) for f in files}
    assert prov["parameters"]["cuts"]["min_bands"] == 50


def test_output_crossmatches_with_lsdb(ingested):
    cat = lsdb.open_catalog(ingested[0])
    kept = cat.compute()
    rng = np.random.default_rng(0)
    other = kept.sample(100, random_state=1)[["OBJECT_ID", "ALPHA_J2000", "DELTA_J2000"]].copy()
    # another survey's positions of the same objects, 0.3 arcsec off
    other["ra"] = other["ALPHA_J2000"] + rng.normal(0, 0.3 / 3600, 100) / np.cos(
        np.radians(other["DELTA_J2000"])
    )
    other["dec"] = other["DELTA_J2000"] + rng.normal(0, 0.3 / 3600, 100)
    other = other.rename(columns={"OBJECT_ID": "OTHER_ID"})[["OTHER_ID", "ra", "dec"]]
    other_cat = lsdb.from_dataframe(other, ra_column="ra", dec_column="dec")
    matched = cat.crossmatch(other_cat, radius_arcsec=2.0, suffixes=("", "_other")).compute()
    assert len(matched) == 100
    assert (matched["OBJECT_ID"] == matched["OTHER_ID_other"]).all()


def test_output_has_a_margin_cache(ingested):
    """hats-import's margin: copies of catalogue rows near the edge of another pixel."""
    from jpasbatch.catalog.margin import MARGIN_ARCSEC, open_catalog

    out, summary = ingested
    assert summary.margin == str(out / "margin")
    cat = open_catalog(out)
    info = cat.margin.hc_structure.catalog_info
    assert info.catalog_type == "margin" and info.margin_threshold >= MARGIN_ARCSEC
    margin = cat.margin.compute()
    kept = cat.compute().set_index("OBJECT_ID")
    assert len(margin) > 0 and len(cat.get_healpix_pixels()) > 1
    # every margin row is a catalogue row, unchanged
    pd.testing.assert_frame_equal(
        margin.set_index("OBJECT_ID")[["ALPHA_J2000", "FLUX_J0378"]],
        kept.loc[margin["OBJECT_ID"], ["ALPHA_J2000", "FLUX_J0378"]],
    )


def test_killed_ingest_resumes_without_redoing_chunks(inputs, ingested, tmp_path):
    files, _ = inputs
    out = tmp_path / "cat"
    cmd = [sys.executable, "-m", "jpasbatch.cli", "ingest", *map(str, files), "--out", str(out)]
    cmd += ["--max-rows", "300", "--chunk-rows", "500", "--workers", "1"]
    # a real interruption: SIGKILL the whole process group once a chunk is done
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done = out / WORK / "done"
    deadline = time.monotonic() + 120
    while not (done.exists() and any(done.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "ingest ended before a chunk"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(p.stem for p in done.glob("*.json"))
    assert not (out / SUMMARY).exists()
    stamps = {k: (out / "rejects" / f"{k}.parquet").stat().st_mtime_ns for k in finished}

    res = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["chunks_resumed"] == len(finished) >= 1
    for key, stamp in stamps.items():  # finished chunks were not redone
        assert (out / "rejects" / f"{key}.parquet").stat().st_mtime_ns == stamp
    # and the result is the uninterrupted run's
    ref_out, ref = ingested
    assert (summary["rows_kept"], summary["rejected_by_reason"]) == (
        ref.rows_kept,
        ref.rejected_by_reason,
    )
    got = lsdb.open_catalog(out).compute().sort_values("OBJECT_ID").reset_index(drop=True)
    want = lsdb.open_catalog(ref_out).compute().sort_values("OBJECT_ID").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    key = ["SOURCE_FILE", "SOURCE_ROW"]
    rej = pq.read_table(out / "rejects").to_pandas().sort_values(key).reset_index(drop=True)
    ref_rej = pq.read_table(ref_out / "rejects").to_pandas().sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(rej, ref_rej)
