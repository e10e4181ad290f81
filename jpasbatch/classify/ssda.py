"""Semi-supervised sim-to-obs domain adaptation (SSDA) on the emulated survey.

The observed world has labels only where spectroscopy exists: the emulator's
"spectroscopic cross-match" (bright-biased, class-dependent, like DESI / SDSS
targets). A label budget is drawn from the cross-matched objects of the
ingested catalogue. Three models share that budget: mocks-only (never sees
observed labels), target-only (trained from scratch on the budget) and SSDA
(the mocks-only model fine-tuned on the budget).

Two held-out sets: the cross-matched objects outside the budget (the SSDA
paper's protocol: held-out J-PAS x DESI objects, QSO-rich), and *all* other
observed objects to ``r_max``, whose classes only the emulator's hidden truth
knows: the population a VAC classifies, at the sky's abundances.
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
        Destination: ``adapt.parquet`` (SPLIT train / validation), ``heldout.parquet``
        (every other object, SPLIT test) and ``heldout_xmatch.parquet`` (the
        cross-matched ones among them).
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
    held_xmatch = held[obs["IN_XMATCH"].to_numpy()[held]]
    paths = {key: out / f"{key}.parquet" for key in ("adapt", "heldout", "heldout_xmatch")}
    for key, rows, sp in (
        ("adapt", chosen, split),
        ("heldout", held, "test"),
        ("heldout_xmatch", held_xmatch, "test"),
    ):
        df = obs.iloc[rows]
        flux = df[_PHOT[: len(BANDS)]].to_numpy(float)
        relerr = df[_PHOT[len(BANDS) :]].to_numpy(float)
        table = mock_table(df["OBJECT_ID"], flux, relerr, df, sp)
        write_partition(table, paths[key], MOCK)
    return paths
