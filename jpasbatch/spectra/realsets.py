"""The development check on real survey spectra: files, labels, the chain, the figures.

A folder of real sets (``../shared/data/real_spectra``: SDSS spec-lite, DESI
coadds, LAMOST and DESI tables) is observed through the J-PAS curves the way a
user would (:func:`jpasbatch.spectra.photometry.photometry_files`, the
``jpasbatch photometry`` path), and every set is scored against its pipeline
labels. Each set folder holds ``spectra/`` (or DESI ``coadd-*.fits`` beside
``redrock-*.fits``) and a ``labels.csv`` whose columns differ per survey;
:func:`labels` maps them to ``SPECNAME``/``ID``, ``CLASS_TRUE`` (STAR, GALAXY,
QSO_LOW, QSO_HIGH) and ``Z_TRUE``.

These files are a check, never a test's only data: tests generate their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

from jpasbatch.core.errors import InputError

#: The boundary of the QSO_LOW / QSO_HIGH classes.
Z_QSO_HIGH = 2.1
#: The labels.csv column of the class and redshift, per spelling found in the sets.
_CLASS_COLUMNS = ("CLASS", "cls", "spectype")
_Z_COLUMNS = ("Z", "z")


@dataclass(frozen=True)
class RealSet:
    """One folder of real spectra and its labels."""

    name: str
    files: list[Path]
    labels: pd.DataFrame


def four_class(cls: pd.Series, z: pd.Series) -> pd.Series:
    """STAR / GALAXY / QSO_LOW / QSO_HIGH from a pipeline class and redshift."""
    cls = cls.astype(str).str.strip().str.upper()
    qso = np.where(z.to_numpy(float) >= Z_QSO_HIGH, "QSO_HIGH", "QSO_LOW")
    return pd.Series(np.where(cls == "QSO", qso, cls), index=cls.index)


def labels(folder: Path) -> pd.DataFrame:
    """The set's labels: ``SPECNAME`` (file name), ``ID`` (DESI TARGETID or ""),
    ``CLASS_TRUE``, ``Z_TRUE``."""
    csv = folder / "labels.csv"
    if csv.exists():
        raw = pd.read_csv(csv)
        ccol = next((c for c in _CLASS_COLUMNS if c in raw), None)
        zcol = next((c for c in _Z_COLUMNS if c in raw), None)
        if ccol is None or zcol is None or "file" not in raw:
            raise InputError("labels.csv needs file, a class and a z column", path=csv)
        z = raw[zcol].astype(float)
        return pd.DataFrame(
            {
                "SPECNAME": raw["file"].map(lambda f: Path(f).name),
                "ID": "",
                "CLASS_TRUE": four_class(raw[ccol], z),
                "Z_TRUE": z.clip(lower=0.0),
            }
        )
    rows = []
    for rr in sorted(folder.glob("redrock-*.fits")):
        with fits.open(rr) as hdul:
            data = hdul["REDSHIFTS"].data
            for row in data:
                rows.append(
                    {
                        "SPECNAME": rr.name.replace("redrock-", "coadd-"),
                        "ID": str(int(row["TARGETID"])),
                        "CLASS": str(row["SPECTYPE"]).strip(),
                        "Z_TRUE": max(float(row["Z"]), 0.0),
                    }
                )
    if not rows:
        raise InputError("no labels.csv and no redrock-*.fits", path=folder)
    df = pd.DataFrame(rows)
    df["CLASS_TRUE"] = four_class(df.pop("CLASS"), df["Z_TRUE"])
    return df


def discover(root: str | Path) -> list[RealSet]:
    """Every set folder under ``root`` (a folder with ``labels.csv`` or ``redrock-*.fits``)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder of real spectra sets", path=root)
    sets = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / "spectra").is_dir():
            files = sorted(p for p in (folder / "spectra").rglob("*") if p.is_file())
        else:
            files = sorted(folder.glob("coadd-*.fits"))
        if files:
            sets.append(RealSet(folder.name, files, labels(folder)))
    if not sets:
        raise InputError("no set folders (spectra/ + labels.csv) found", path=root)
    return sets


def match_labels(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """``table`` rows (``SPECNAME``, ``ID``) with their ``CLASS_TRUE``/``Z_TRUE``.

    Files holding one object match on the file name; multi-object files
    (DESI coadds) on file name and ID.
    """
    by_id = truth[truth["ID"] != ""]
    by_file = truth[truth["ID"] == ""].drop(columns="ID")
    a = table.merge(by_file, on="SPECNAME", how="inner")
    b = table.merge(by_id, on=["SPECNAME", "ID"], how="inner")
    return pd.concat([a, b], ignore_index=True)


def band_coverage(table: pd.DataFrame, bands: list[str], lo: np.ndarray, hi: np.ndarray) -> dict:
    """Band measurements covered, against the bands each spectrum's range covers.

    A band is in range when its whole transmission lies inside
    ``[WAVE_MIN, WAVE_MAX]`` of the spectrum; masking is what may lose it then.
    """
    wmin = table["WAVE_MIN"].to_numpy(float)[:, None]
    wmax = table["WAVE_MAX"].to_numpy(float)[:, None]
    in_range = (lo[None] >= wmin) & (hi[None] <= wmax)
    covered = np.column_stack([table[f"COVERED_{b}"].to_numpy(bool) for b in bands])
    n_range = int(in_range.sum())
    n_cov = int((covered & in_range).sum())
    return {
        "bands_in_range": n_range,
        "bands_covered": n_cov,
        "coverage": n_cov / n_range if n_range else float("nan"),
    }
