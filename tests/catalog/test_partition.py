"""The direct partitioner writes hats-import's catalogue: same pixels, rows, values, rejects."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jpasbatch.catalog.ingest import ingest
from jpasbatch.catalog.partition import destination_pixels
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.catalog.readers import write_archive_like
from jpasbatch.catalog.schemas import OBSERVED

#: Properties that name the run, not the catalogue.
RUN_PROPERTIES = ("hats_creation_date", "hats_estsize", "jpasbatch_provenance")


@pytest.fixture(scope="module")
def both(tmp_path_factory, client):
    """One input (2 files, every row defect, repeated ids) ingested by each partitioner."""
    d = tmp_path_factory.mktemp("partition")
    # a wide patch, so that pixels of several orders hold the 300-row threshold
    a = random_catalogue(2500, seed=3, ra=(10, 40), dec=(-5, 25), bad_fraction=0.03)
    b = random_catalogue(1200, seed=4, ra=(10, 40), dec=(-5, 25), bad_fraction=0.03)
    cols = {n: b.column(n).to_numpy().copy() for n in b.column_names}
    # ids repeated across files (b's first rows copy a's): the first occurrence stays
    for n in ("TILE_ID", "NUMBER", "OBJECT_ID"):
        cols[n][:10] = a.column(n).to_numpy()[:10]
    cols["FLAGS"][:10] = 0  # so that the repeats are rejected as repeats
    cols["DELTA_J2000"][50] = np.nan
    b = pa.table(cols, schema=OBSERVED)
    files = [
        write_archive_like(d / "a.parquet", a, layout="array", fmt="parquet"),
        write_archive_like(d / "b.fits", b, layout="per_band", fmt="fits"),
    ]
    out = {}
    for name in ("direct", "hats-import"):
        out[name] = d / name / "cat"
        ingest(files, out[name], client=client, progress=False, max_rows_per_partition=300,
               chunk_rows=700, partitioner=name)  # fmt: skip
    return out["direct"], out["hats-import"]


def _pixel_files(cat):
    return {p.relative_to(cat): p for p in sorted((cat / "dataset").rglob("Npix=*.parquet"))}


def test_same_pixels_rows_and_values(both):
    new, old = both
    files_new, files_old = _pixel_files(new), _pixel_files(old)
    assert list(files_new) == list(files_old)
    assert len(files_new) > 3  # several pixels, at more than one order
    assert len({p.parts[1] for p in files_new}) > 1
    assert (new / "partition_info.csv").read_text() == (old / "partition_info.csv").read_text()
    for rel, path in files_new.items():
        got, want = pq.read_table(path), pq.read_table(files_old[rel])
        assert got.schema.equals(want.schema, check_metadata=True), rel
        assert got.num_rows == want.num_rows > 0, rel
        assert got.equals(want), rel  # same rows, same order, same values


def test_same_rejects_and_catalogue_files(both):
    new, old = both
    key = [("SOURCE_FILE", "ascending"), ("SOURCE_ROW", "ascending")]

    def rejects(cat):
        t = pq.read_table(cat / "rejects").sort_by(key).to_pydict()
        t["SOURCE_FILE"] = [p.split("/")[-1] for p in t["SOURCE_FILE"]]  # the same input files
        return t

    got, want = rejects(new), rejects(old)
    assert got == want
    assert {"DUPLICATE_ID", "BAD_COORD", "FLAGS", "FEW_BANDS"} <= set(got["REASON"])
    for name in ("point_map.fits", "skymap.fits"):
        a, b = fits.getdata(new / name), fits.getdata(old / name)
        np.testing.assert_array_equal(a, b)

    def properties(cat):
        lines = (cat / "hats.properties").read_text().splitlines()
        return {k: v for k, _, v in (ln.partition("=") for ln in lines) if k not in RUN_PROPERTIES}

    assert properties(new) == properties(old)
    assert pq.read_schema(new / "dataset" / "_common_metadata").equals(
        pq.read_schema(old / "dataset" / "_common_metadata"), check_metadata=True
    )
    assert pq.read_metadata(new / "dataset" / "_metadata").num_rows == (
        pq.read_metadata(old / "dataset" / "_metadata").num_rows
    )


@pytest.mark.parametrize("threshold", [50, 400, 5_000])
def test_destination_pixels_are_hats_alignment(threshold):
    from hats.pixel_math.partition_stats import generate_alignment

    order = 6
    rng = np.random.default_rng(threshold)
    hist = np.zeros(12 * 4**order, np.int64)
    hist[rng.integers(0, 3000, 20_000)] += 1  # a clustered patch plus scattered rows
    hist[rng.integers(0, hist.size, 2000)] += 1
    full = generate_alignment(hist, highest_order=order, lowest_order=0, threshold=threshold,
                              drop_empty_siblings=True, use_lower_order=True)  # fmt: skip
    want = sorted({tuple(int(v) for v in a) for a in full if a is not None})
    assert destination_pixels(hist, order, threshold) == [p for p in want if p[2] > 0]


def test_a_written_pixel_is_not_redone(both):
    from jpasbatch.catalog.partition import write_pixel

    new, _ = both
    path = next(iter(_pixel_files(new).values()))
    rows, stamp = pq.read_metadata(path).num_rows, path.stat().st_mtime_ns
    schema = pq.read_schema(path)
    # resumed: a pixel file with the rows the histogram counted is kept as it is
    assert write_pixel([("/nonexistent.parquet", 0, rows)], str(path), schema, rows, {}) == rows
    assert path.stat().st_mtime_ns == stamp
    # one that does not hold the counted rows is written again (from the kept files)
    with pytest.raises(FileNotFoundError):
        write_pixel([("/nonexistent.parquet", 0, rows)], str(path), schema, rows + 1, {})
