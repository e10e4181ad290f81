import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jpasbatch.catalog.random import random_catalogue
from jpasbatch.catalog.rowpart import write_row_partitioned
from jpasbatch.catalog.schemas import MOCK


def mock_table(n, seed):
    base = random_catalogue(n, seed=seed, first_number=1 + 10_000 * seed)
    rng = np.random.default_rng(seed)
    extra = {
        "CLASS": pa.array(rng.choice(["STAR", "GALAXY", "QSO_LOW", "QSO_HIGH"], n)),
        "Z": pa.array(rng.uniform(0, 4, n)),
        "MAG_R": pa.array(rng.uniform(17, 24, n).astype(np.float32)),
        "WEIGHT": pa.array(np.full(n, 1.0 / n)),
        "SPLIT": pa.array(rng.choice(["train", "validation", "test"], n)),
    }
    for name, values in extra.items():
        base = base.append_column(name, values)
    return base


def test_row_partitions_round_trip_and_resume(tmp_path):
    chunks = [mock_table(700, s) for s in range(4)]  # 2800 rows in uneven chunks
    props = write_row_partitioned(chunks, tmp_path, MOCK, max_rows=1000, provenance={"seed": 1})
    assert props["total_rows"] == 2800
    assert props["partitions"] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.read_metadata(tmp_path / p).num_rows for p in props["partitions"]] == [
        1000,
        1000,
        800,
    ]
    back = pq.read_table(tmp_path)
    expected = pa.concat_tables(chunks).select(MOCK.names)
    assert back.select(MOCK.names).equals(expected.cast(MOCK))
    schema = pq.read_schema(tmp_path / "part-00001.parquet")
    assert schema.field("FLUX_J0378").metadata[b"unit"] == b"erg s-1 cm-2 Angstrom-1"
    # and astropy reads the units too
    from astropy import units as u
    from astropy.table import Table

    read = Table.read(tmp_path / "part-00001.parquet")
    assert read["FLUX_J0378"].unit == u.erg / u.s / u.cm**2 / u.AA
    assert read["MAG_R"].unit == u.mag and read["Z"].unit is None
    assert json.loads(schema.metadata[b"jpasbatch_provenance"]) == {"seed": 1}
    assert json.loads((tmp_path / "_properties.json").read_text())["total_rows"] == 2800

    # resume: finished partitions are not rewritten, a missing one is
    before = (tmp_path / "part-00000.parquet").stat().st_mtime_ns
    (tmp_path / "part-00002.parquet").unlink()
    write_row_partitioned(chunks, tmp_path, MOCK, max_rows=1000, resume=True)
    assert (tmp_path / "part-00000.parquet").stat().st_mtime_ns == before
    assert pq.read_table(tmp_path).select(MOCK.names).equals(expected.cast(MOCK))
