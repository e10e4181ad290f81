"""Tiny inputs for the foundation-model tests: MOCK_EXT mocks and an emulated observed tile."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jpasbatch.mocks.pipeline import MocksConfig, make_partition
from jpasbatch.sim.emulator import SimulateConfig, external_table, simulate_tile
from jpasbatch.sim.survey import footprint

#: A model small enough to train in seconds (the full size is tested for shapes only).
TINY = {"d_model": 32, "n_heads": 4, "enc_layers": 1, "enc_ffn": 64, "dec_layers": 1, "dec_ffn": 64}


@pytest.fixture(scope="session")
def mock_dir(tmp_path_factory):
    """A two-partition MOCK_EXT dataset (1,500 rows each, row groups of 500)."""
    root = tmp_path_factory.mktemp("fmocks")
    config = MocksConfig(
        n_objects=3000, partition_rows=1500, error_model="depth", fast=True, seed=11,
        qso_boost=10, extras=True,
    )  # fmt: skip
    for k in range(2):
        pq.write_table(
            make_partition(k, config), root / f"part-{k:05d}.parquet", row_group_size=500
        )
    return root


@pytest.fixture(scope="session")
def observed_tile(tmp_path_factory):
    """An emulated observed tile (OBSERVED schema), its truth and its external photometry."""
    config = SimulateConfig(area_deg2=0.03, seed=5, fast=True)
    cat, truth = simulate_tile(footprint(0.03)[0], 0.03, config, 0)
    ext = external_table(truth, config, 0)
    root = tmp_path_factory.mktemp("fobs")
    pq.write_table(cat, root / "catalogue.parquet")
    (root / "external").mkdir()
    pq.write_table(ext, root / "external" / "tile.parquet")
    return {"catalogue": cat, "truth": truth, "external": ext, "root": root}


def joined(cat: pa.Table, ext: pa.Table) -> pa.Table:
    """The observed table with its external columns (rows in the same order)."""
    for name in ext.column_names[1:]:
        cat = cat.append_column(name, ext[name])
    return cat
