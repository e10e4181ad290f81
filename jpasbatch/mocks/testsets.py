"""Test-Synth and Test-Real: the spectroscopic cross-match objects, both ways.

* **Test-Real**: the cross-match objects as the (emulated) survey observed them.
* **Test-Synth** (OJALA 2.3): the same objects rebuilt from their own spectra
  (the emulator's noiseless fluxes), perturbed with their *exact* observed
  errors. The difference between the two isolates what the spectra-to-photometry
  modelling misses (aperture losses, zero points, the noise model's shape).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from jpasbatch.catalog.readers import read_catalogue
from jpasbatch.catalog.rowpart import write_partition
from jpasbatch.catalog.schemas import BANDS, MOCK


def mock_table(ids, flux, relerr, truth: pd.DataFrame, split) -> pa.Table:
    """Labelled photometry as a ``MOCK`` table: equal weights, ``split`` a name or one per row."""
    columns = {"OBJECT_ID": np.asarray(ids, np.int64)}
    columns |= {f"FLUX_{b}": flux[:, j].astype(np.float32) for j, b in enumerate(BANDS)}
    columns |= {f"FLUX_RELERR_{b}": relerr[:, j].astype(np.float32) for j, b in enumerate(BANDS)}
    columns |= {
        "CLASS": truth["CLASS"].astype(str).to_numpy(),
        "Z": truth["Z"].to_numpy(float),
        "MAG_R": truth["MAG_R"].to_numpy(np.float32),
        "WEIGHT": np.full(len(ids), 1.0 / max(len(ids), 1)),
        "SPLIT": np.broadcast_to(np.asarray(split, dtype=str), len(ids)),
    }
    return pa.table(columns, schema=MOCK)


def build_test_sets(sim_dir: str | Path, out: str | Path, seed: int = 0) -> dict[str, int]:
    """Write ``test_real.parquet`` and ``test_synth.parquet`` (schema ``MOCK``) into ``out``.

    Parameters
    ----------
    sim_dir
        Output folder of :func:`jpasbatch.sim.emulator.simulate` (``catalogue/``, ``truth/``).
    out
        Destination folder.
    seed
        Seed of the Test-Synth noise draw.

    Returns
    -------
    dict
        Rows written per set.
    """
    sim_dir, out = Path(sim_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    truth = pd.read_parquet(sim_dir / "truth")
    truth = truth[truth["IN_XMATCH"]].set_index("OBJECT_ID")
    cats = [read_catalogue(p) for p in sorted((sim_dir / "catalogue").glob("*.parquet"))]
    obs = pa.concat_tables(cats).to_pandas().set_index("OBJECT_ID").loc[truth.index]
    flux = obs[[f"FLUX_{b}" for b in BANDS]].to_numpy(float)
    relerr = obs[[f"FLUX_RELERR_{b}" for b in BANDS]].to_numpy(float)
    true_flux = truth[[f"TRUE_FLUX_{b}" for b in BANDS]].to_numpy(float)
    sigma = relerr * np.abs(flux)  # the exact observed error of each measurement
    rng = np.random.default_rng(seed)
    synth = true_flux + sigma * rng.standard_normal(true_flux.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        synth_relerr = sigma / np.abs(synth)
    ids = truth.index.to_numpy()
    labels = truth.reset_index()
    write_partition(
        mock_table(ids, flux, relerr, labels, "test_real"), out / "test_real.parquet", MOCK
    )
    write_partition(
        mock_table(ids, synth, synth_relerr, labels, "test_synth"),
        out / "test_synth.parquet",
        MOCK,
    )
    return {"test_real": len(ids), "test_synth": len(ids)}
