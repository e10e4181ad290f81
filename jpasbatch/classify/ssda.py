"""Semi-supervised sim-to-obs domain adaptation (SSDA) on the emulated survey.

The observed world has labels only where spectroscopy exists: the emulator's
"spectroscopic cross-match" (bright-biased, class-dependent, like DESI / SDSS
targets). A label budget is drawn from the cross-matched objects of the
ingested catalogue; every other ingested object to ``r_max`` (their classes
known only to the emulator's hidden truth) is held out for evaluation. Three
models share that budget: mocks-only (never sees observed labels),
target-only (trained from scratch on the budget) and SSDA (the mocks-only
model fine-tuned on the budget).

Held out are *all* observed objects, not only cross-matched ones: that is the
population a VAC classifies, and on an emulator its labels are free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from jpasbatch.catalog.rowpart import write_partition
from jpasbatch.catalog.schemas import BANDS, MOCK
from jpasbatch.mocks.testsets import mock_table

_PHOT = [f"FLUX_{b}" for b in BANDS] + [f"FLUX_RELERR_{b}" for b in BANDS]


def labelled_observed(
    catalogue: str | Path,
    truth: str | Path,
    out: str | Path,
    *,
    budget: int = 1000,
    validation_fraction: float = 0.2,
    r_max: float = 23.6,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the adaptation set and the held-out set (``MOCK`` schema) into ``out``.

    Parameters
    ----------
    catalogue
        The ingested observed catalogue (HATS folder).
    truth
        The emulator's truth folder (``OBJECT_ID``, ``CLASS``, ``Z``, ``MAG_R``, ``IN_XMATCH``).
    out
        Destination: ``adapt.parquet`` (SPLIT train / validation) and ``heldout.parquet`` (test).
    budget
        Labelled observed objects available for training (train + validation).
    validation_fraction
        Part of the budget kept for early stopping and calibration.
    r_max
        Faintest true rSDSS magnitude of the held-out set.
    seed
        Seed of the budget draw.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = Path(catalogue) / "dataset" if (Path(catalogue) / "dataset").is_dir() else catalogue
    obs = ds.dataset(source, format="parquet").to_table(columns=["OBJECT_ID", *_PHOT]).to_pandas()
    labels = pd.read_parquet(truth, columns=["OBJECT_ID", "CLASS", "Z", "MAG_R", "IN_XMATCH"])
    obs = obs.merge(labels, on="OBJECT_ID", how="inner", validate="one_to_one")
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(obs["IN_XMATCH"].to_numpy())
    if budget > len(pool):
        raise ValueError(f"label budget {budget} exceeds the {len(pool)} cross-matched objects")
    chosen = rng.choice(pool, budget, replace=False)
    n_val = max(1, round(validation_fraction * budget))
    split = np.full(budget, "train", dtype=object)
    split[rng.permutation(budget)[:n_val]] = "validation"
    held = np.setdiff1d(np.arange(len(obs)), chosen)
    held = held[obs["MAG_R"].to_numpy()[held] <= r_max]
    paths = {"adapt": out / "adapt.parquet", "heldout": out / "heldout.parquet"}
    for key, rows, sp in (("adapt", chosen, split), ("heldout", held, "test")):
        df = obs.iloc[rows]
        flux = df[_PHOT[: len(BANDS)]].to_numpy(float)
        relerr = df[_PHOT[len(BANDS) :]].to_numpy(float)
        table = mock_table(df["OBJECT_ID"], flux, relerr, df, sp)
        write_partition(table, paths[key], MOCK)
    return paths
