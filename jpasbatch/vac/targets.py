"""QSO target lists for spectroscopic follow-up, and expected counts, from a VAC.

Candidates: P(QSO_LOW) + P(QSO_HIGH) >= ``threshold`` and ``MAG_R`` <=
``mag_limit``, sorted by that probability (highest first). Expected counts per
magnitude bin are sums of probabilities, the number estimate of miniJPAS QSO
III (it is unbiased where the probabilities are calibrated, unlike counting
argmax classes). Both go out as FITS (for the fibre-assignment tools) and CSV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from astropy.table import Table

from jpasbatch.catalog.schemas import CLASSES, VAC

_COLUMNS = ["OBJECT_ID", "ALPHA_J2000", "DELTA_J2000", "MAG_R", "CLASS", "QUALITY"]


def read_vac(vac_dir: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The VAC's rows (Parquet partitions under ``dataset/``) as a DataFrame."""
    source = Path(vac_dir) / "dataset"
    return ds.dataset(source, format="parquet").to_table(columns=columns).to_pandas()


def qso_targets(
    vac: pd.DataFrame, *, threshold: float = 0.5, mag_limit: float = 23.0
) -> pd.DataFrame:
    """QSO candidates, most probable first (ties by OBJECT_ID, for a stable list)."""
    p_qso = vac["P_QSO_LOW"] + vac["P_QSO_HIGH"]
    sel = (p_qso >= threshold) & (vac["MAG_R"] <= mag_limit)
    out = vac.loc[sel, [c for c in _COLUMNS if c in vac]].copy()
    out["P_QSO"] = p_qso[sel].astype(np.float32)
    out["P_QSO_HIGH"] = vac.loc[sel, "P_QSO_HIGH"].astype(np.float32)
    return out.sort_values(["P_QSO", "OBJECT_ID"], ascending=[False, True], ignore_index=True)


def expected_counts(
    vac: pd.DataFrame, bins: np.ndarray | None = None, *, threshold: float = 0.5
) -> pd.DataFrame:
    """Per rSDSS bin: objects, expected number of each class (sum of P), and candidates."""
    bins = np.arange(16.0, 24.01, 0.5) if bins is None else np.asarray(bins)
    idx = np.digitize(vac["MAG_R"].to_numpy(), bins) - 1
    ok = (idx >= 0) & (idx < len(bins) - 1)
    frame = vac.loc[ok, [f"P_{c}" for c in CLASSES]].astype(float)
    frame["N"] = 1
    frame["N_CANDIDATES"] = (vac.loc[ok, "P_QSO_LOW"] + vac.loc[ok, "P_QSO_HIGH"]) >= threshold
    grouped = frame.groupby(idx[ok]).sum().reindex(range(len(bins) - 1), fill_value=0)
    grouped = grouped.rename(columns={f"P_{c}": f"N_{c}_EXPECTED" for c in CLASSES})
    grouped.insert(0, "MAG_R_LO", bins[:-1])
    grouped.insert(1, "MAG_R_HI", bins[1:])
    grouped["N_QSO_EXPECTED"] = grouped["N_QSO_LOW_EXPECTED"] + grouped["N_QSO_HIGH_EXPECTED"]
    return grouped.reset_index(drop=True).astype({"N": int, "N_CANDIDATES": int})


#: Units of the columns that are not VAC columns (the others take the VAC schema's).
_UNITS = {"MAG_R_LO": "mag", "MAG_R_HI": "mag"}


def _with_units(table: Table) -> Table:
    """Units (FITS ``TUNITn``) and descriptions from the VAC schema on ``table``'s columns."""
    for name in table.colnames:
        meta = (VAC.field(name).metadata or {}) if name in VAC.names else {}
        unit = _UNITS.get(name) or meta.get(b"unit", b"").decode()
        if unit:
            table[name].unit = unit
        if meta.get(b"description"):
            table[name].description = meta[b"description"].decode()
    return table


def write_targets(
    vac_dir: str | Path,
    out: str | Path | None = None,
    *,
    threshold: float = 0.5,
    mag_limit: float = 23.0,
) -> dict[str, Path]:
    """Write ``qso_targets.{fits,csv}`` and ``expected_counts.{fits,csv}``; returns the paths."""
    out = Path(out) if out is not None else Path(vac_dir) / "targets"
    out.mkdir(parents=True, exist_ok=True)
    columns = [*_COLUMNS, *[f"P_{c}" for c in CLASSES]]
    vac = read_vac(vac_dir, columns)
    tables = {
        "qso_targets": qso_targets(vac, threshold=threshold, mag_limit=mag_limit),
        "expected_counts": expected_counts(vac, threshold=threshold),
    }
    paths = {}
    for name, frame in tables.items():
        meta = {"PQSO_MIN": threshold, "MAGR_MAX": mag_limit, "SOURCE": str(vac_dir)}
        table = _with_units(Table.from_pandas(frame))
        table.meta.update(meta)
        table.write(out / f"{name}.fits", overwrite=True)
        frame.to_csv(out / f"{name}.csv", index=False)
        paths[name] = out / f"{name}.fits"
        paths[f"{name}_csv"] = out / f"{name}.csv"
    return paths
