"""Inputs the stages are measured on, generated (never downloaded) and deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def observed_catalogue(folder: Path, fast: bool) -> Path:
    """One emulated miniJPAS pointing (~17,500 objects) as ``folder/observed.parquet``."""
    import pyarrow.parquet as pq

    from jpasbatch.sim.emulator import SimulateConfig, simulate_tile
    from jpasbatch.sim.survey import footprint

    path = folder / "observed.parquet"
    if not path.exists():
        cat, _ = simulate_tile(footprint(0.27)[0], 0.27, SimulateConfig(fast=fast), 0)
        pq.write_table(cat, path)
    return path


def labelled_table(n: int, seed: int, split: str | None = None):
    """``n`` MOCK-schema rows whose class is learnable from the fluxes.

    Each class has its own spectral slope across the 60 bands, blurred by
    noise, so a committee reaches a high validation F1 in a few epochs: the
    training stage's answer (validation F1) can then be compared with its peer's.
    ``split``: every row in that split (default: 60 / 20 / 20 % train /
    validation / test).
    """
    import pyarrow as pa

    from jpasbatch.catalog.schemas import BANDS, CLASSES, MOCK

    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    slope = np.array([-1.5, -0.5, 0.5, 1.5])[y]
    x = np.linspace(-1, 1, len(BANDS))
    flux = np.exp(slope[:, None] * x[None, :] + rng.normal(0, 0.1, (n, len(BANDS))))
    flux *= rng.lognormal(0, 0.5, (n, 1))
    cols = {"OBJECT_ID": np.arange(n, dtype=np.int64) + seed * 10_000_000}
    cols |= {f"FLUX_{b}": flux[:, j].astype(np.float32) for j, b in enumerate(BANDS)}
    cols |= {f"FLUX_RELERR_{b}": np.full(n, 0.1, np.float32) for b in BANDS}
    cols |= {
        "CLASS": np.array(CLASSES)[y],
        "Z": np.zeros(n),
        "MAG_R": np.full(n, 20, np.float32),
        "WEIGHT": np.ones(n),
        "SPLIT": np.full(n, split)
        if split
        else rng.choice(["train", "validation", "test"], n, p=[0.6, 0.2, 0.2]),
    }
    return pa.table(cols, schema=MOCK)


def committee_classifier(flux_sample: np.ndarray, seed: int = 0):
    """The paper's 8 x (8 x 200) committee with fresh weights and a scaler on ``flux_sample``.

    Inference costs the same whatever the weights, so no training is needed.
    """
    from jpasbatch.classify.classifier import Classifier
    from jpasbatch.classify.features import FeatureScaler
    from jpasbatch.classify.model import CommitteeMLP

    scaler = FeatureScaler.fit(flux_sample)
    return Classifier(CommitteeMLP(scaler.n_features, seed=seed), scaler)
