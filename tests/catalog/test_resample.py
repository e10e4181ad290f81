"""The rehearsal catalogue generator: resampled rows, fresh noise, known defects."""

import numpy as np
import pyarrow as pa
import pytest

from jpasbatch.catalog.ingest import ingest
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.catalog.readers import read_catalogue
from jpasbatch.catalog.resample import DEFECTS, Pool, resample_catalogue, resampled_table
from jpasbatch.catalog.schemas import BANDS, flux_column, relerr_column

PARAMS = dict(footprint=(120.0, 150.0, 10.0, 30.0), bad_fraction=0.03, noise_scale=0.5, seed=7,
              first_tile=4000)  # fmt: skip


@pytest.fixture(scope="module")
def pool():
    # its own defects are dropped: only clean rows are drawn
    return random_catalogue(2000, seed=5, bad_fraction=0.05)


def _matrix(table, column):
    return np.column_stack([table[column(b)].to_numpy() for b in BANDS])


def test_fresh_noise_new_positions_same_seed_same_table(pool):
    one = Pool.from_table(pool.slice(0, 1))  # a single object: every row is a copy of it
    table, defects = resampled_table(one, 3, 20_000, **(PARAMS | {"bad_fraction": 0.0}))
    assert sum(defects.values()) == 0
    flux, relerr = _matrix(table, flux_column), _matrix(table, relerr_column)
    z = (flux - one.flux) / (0.5 * one.sigma)  # the fresh noise, in units of k sigma
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    # the reported error is the copy's scatter about the true flux: sigma sqrt(1 + k^2)
    want = np.broadcast_to(np.sqrt(1.25) * one.sigma, flux.shape)
    np.testing.assert_allclose(relerr * np.abs(flux), want, rtol=1e-5)
    ra, dec = table["ALPHA_J2000"].to_numpy(), table["DELTA_J2000"].to_numpy()
    assert ra.min() >= 120 and ra.max() <= 150 and dec.min() >= 10 and dec.max() <= 30
    assert len(np.unique(ra)) == 20_000
    again, _ = resampled_table(one, 3, 20_000, **(PARAMS | {"bad_fraction": 0.0}))
    assert again.equals(table)
    other, _ = resampled_table(one, 4, 20_000, **(PARAMS | {"bad_fraction": 0.0}))
    assert not np.array_equal(other["ALPHA_J2000"].to_numpy(), ra)
    assert set(other["TILE_ID"].to_pylist()) == {4004}


def test_ingest_rejects_exactly_the_defects_made(pool, client, tmp_path):
    s = resample_catalogue(pool, tmp_path / "archive", 12_000, rows_per_file=5000, client=client,
                           progress=False, **PARAMS)  # fmt: skip
    assert [p.rsplit(".", 1)[1] for p in s.files] == ["parquet", "fits", "parquet"]
    assert sum(read_catalogue(p).num_rows for p in s.files) == s.rows == 12_000
    assert set(s.expected_rejects) == set(DEFECTS) and min(s.expected_rejects.values()) > 0
    assert 0.025 < sum(s.expected_rejects.values()) / s.rows <= 0.03
    got = ingest(s.files, tmp_path / "cat", client=client, progress=False,
                 max_rows_per_partition=4000)  # fmt: skip
    assert got.rows_in == 12_000 and got.partitions > 1
    assert got.rejected_by_reason == s.expected_rejects
    assert got.rows_kept == 12_000 - sum(s.expected_rejects.values())


def test_pool_without_clean_rows_is_an_error():
    from jpasbatch.core.errors import JpasBatchError

    bad = random_catalogue(10, seed=1)
    bad = bad.set_column(
        bad.schema.get_field_index("FLAGS"), "FLAGS", pa.array([4] * 10, pa.int32())
    )
    with pytest.raises(JpasBatchError, match="no row of the pool"):
        Pool.from_table(bad)
