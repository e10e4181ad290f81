"""Test-Synth and Test-Real: the spectroscopic cross-match objects, both ways.

* **Test-Real**: the cross-match objects as the (emulated) survey observed them.
* **Test-Synth** (OJALA 2.3): the same objects rebuilt from their own spectra
  (the emulator's noiseless fluxes), perturbed with their *exact* observed
  errors. The difference between the two isolates what the spectra-to-photometry
  modelling misses (aperture losses, zero points, the noise model's shape).

Both carry the optional ``MOCK_EXT`` columns: the survey's ``CLASS_STAR``, the
physical labels of the truth table (``TEFF`` for stars, ``EW_<LINE>`` for
galaxies) and, where the emulator wrote ``external/``, the external bands and
``MORPH_TYPE`` (observed in both sets: OJALA re-synthesises only J-PAS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from jpasbatch.catalog.readers import read_catalogue
from jpasbatch.catalog.rowpart import write_partition
from jpasbatch.catalog.schemas import BANDS, EXTERNAL, MOCK, MOCK_EXT, PHYSICAL_LABELS


def mock_table(
    ids, flux, relerr, truth: pd.DataFrame, split, extra: dict | None = None
) -> pa.Table:
    """Labelled photometry as a ``MOCK`` table: equal weights, ``split`` a name or one per row.

    With ``extra`` (column name -> values, any subset of the optional columns),
    a ``MOCK_EXT`` table whose other optional columns are null.
    """
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
    if extra is None:
        return pa.table(columns, schema=MOCK)
    for field in MOCK_EXT:
        if field.name not in columns:
            values = extra.get(field.name)
            columns[field.name] = (
                pa.nulls(len(ids), field.type) if values is None else np.asarray(values)
            )
    return pa.table(columns, schema=MOCK_EXT)


def _extra_columns(obs: pd.DataFrame, truth: pd.DataFrame, sim_dir: Path) -> dict:
    """The optional columns of the cross-match objects (rows aligned with ``truth``)."""
    extra = {"CLASS_STAR": obs["CLASS_STAR"].to_numpy(np.float32)}
    cls = truth["CLASS"].to_numpy()
    for name in PHYSICAL_LABELS:
        if name in truth:
            v = truth[name].to_numpy(float).copy()
            v[cls != ("STAR" if name == "TEFF" else "GALAXY")] = np.nan
            extra[name] = v
    ext_dir = sim_dir / "external"
    if ext_dir.is_dir():
        ext = pd.read_parquet(ext_dir).set_index("OBJECT_ID").reindex(truth.index)
        for name in EXTERNAL.names[1:]:
            col = ext[name].to_numpy()
            extra[name] = col.astype(str) if name == "MORPH_TYPE" else col.astype(np.float32)
    return extra


def build_test_sets(
    sim_dir: str | Path,
    out: str | Path,
    seed: int = 0,
    *,
    sample: int | None = None,
    suffix: str = "",
) -> dict[str, int]:
    """Write ``test_real.parquet`` and ``test_synth.parquet`` (schema ``MOCK``) into ``out``.

    Parameters
    ----------
    sim_dir
        Output folder of :func:`jpasbatch.sim.emulator.simulate` (``catalogue/``, ``truth/``).
    out
        Destination folder.
    seed
        Seed of the Test-Synth noise draw.
    sample
        Instead of the spectroscopic cross-match, a random sample of this many
        catalogue objects of every magnitude (seeded): a deeper test set than
        any spectroscopic survey gives, which only an emulator can have.
    suffix
        Appended to the file names (``test_real<suffix>.parquet``...).

    Returns
    -------
    dict
        Rows written per set.
    """
    sim_dir, out = Path(sim_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    truth = pd.read_parquet(sim_dir / "truth")
    if sample is None:
        truth = truth[truth["IN_XMATCH"]].set_index("OBJECT_ID")
    else:
        pick = np.random.default_rng([seed, 1]).permutation(len(truth))[:sample]
        truth = truth.iloc[np.sort(pick)].set_index("OBJECT_ID")
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
    extra = _extra_columns(obs, truth, sim_dir)
    write_partition(
        mock_table(ids, flux, relerr, labels, "test_real", extra),
        out / f"test_real{suffix}.parquet",
        MOCK_EXT,
    )
    write_partition(
        mock_table(ids, synth, synth_relerr, labels, "test_synth", extra),
        out / f"test_synth{suffix}.parquet",
        MOCK_EXT,
    )
    return {"test_real": len(ids), "test_synth": len(ids)}
