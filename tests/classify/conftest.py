"""Toy labelled photometry in the MOCK schema, for the classifier tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jpasbatch.catalog.schemas import BANDS, CLASSES, MOCK


def toy_table(n: int, seed: int, noise: float = 0.15) -> pa.Table:
    """Four classes with distinct smooth SEDs (+ noise), r magnitudes 17-23.6."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, len(BANDS))
    shapes = np.stack([1 + 0.8 * np.cos(np.pi * (k + 1) * grid + k) for k in range(4)]) + 0.3
    y = rng.integers(0, 4, n)
    mag = rng.uniform(17, 23.6, n)
    scale = 10 ** (-0.4 * (mag - 20))
    true = shapes[y] * scale[:, None]
    flux = true * (1 + noise * rng.standard_normal(true.shape))
    flux[rng.random(flux.shape) < 0.01] = np.nan  # missing bands
    relerr = np.full(flux.shape, noise)
    split = rng.choice(["train", "validation", "test"], n, p=[0.6, 0.2, 0.2])
    columns = {"OBJECT_ID": np.arange(n, dtype=np.int64) + seed * 10**6}
    columns |= {f"FLUX_{b}": flux[:, j].astype(np.float32) for j, b in enumerate(BANDS)}
    columns |= {f"FLUX_RELERR_{b}": relerr[:, j].astype(np.float32) for j, b in enumerate(BANDS)}
    columns |= {
        "CLASS": np.array(CLASSES)[y],
        "Z": np.zeros(n),
        "MAG_R": mag.astype(np.float32),
        "WEIGHT": np.where(split == "train", 1.0, 0.0),
        "SPLIT": split,
    }
    return pa.table(columns, schema=MOCK)


@pytest.fixture(scope="session")
def toy_mocks(tmp_path_factory):
    """A two-file MOCK dataset (1,500 rows each, 3 row groups per file)."""
    root = tmp_path_factory.mktemp("toy_mocks")
    for k in range(2):
        pq.write_table(toy_table(1500, seed=k), root / f"part-{k:05d}.parquet", row_group_size=500)
    return root


@pytest.fixture(scope="session")
def make_toy():
    """:func:`toy_table`, for tests that need their own toy rows."""
    return toy_table
