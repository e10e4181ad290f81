"""The spectral chain on the labelled real spectra (``spectra-evaluate --real``).

Every set of a real-spectra folder (:func:`jpasbatch.spectra.realsets.discover`: SDSS
spec-lite, DESI coadds, LAMOST and DESI tables, each with its pipeline labels)
is read exactly as ``jpasbatch spectra`` reads user files
(:func:`~jpasbatch.spectra.predict.predict_spectra`), predicted (and refined),
and matched to its labels; QSO_LOW / QSO_HIGH labels become QSO. The table
then goes to the same report as the emulated test split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from jpasbatch.spectra.predict import SpectraModel, add_reference_columns, predict_spectra
from jpasbatch.spectra.realsets import discover, match_labels


def real_predictions(
    root: str | Path, model: SpectraModel, refine: bool = True, client=None, progress: bool = True
) -> pd.DataFrame:
    """Predictions for every labelled real spectrum under ``root``, with ``SET``,
    ``CLASS_TRUE`` (STAR / GALAXY / QSO) and ``Z_TRUE``; spectra without a label are dropped."""
    parts = []
    for rs in discover(root):
        table, _ = predict_spectra(model, rs.files, progress=progress, refine=refine, client=client)
        table["SPECNAME"] = table["SOURCE"].map(lambda s: Path(str(s)).name)
        table["ID"] = table["ID"].astype(str)
        truth = rs.labels.assign(ID=rs.labels["ID"].astype(str))
        matched = match_labels(table.drop(columns=["CLASS_TRUE", "Z_TRUE"], errors="ignore"), truth)
        matched["SET"] = rs.name
        parts.append(matched)
    table = pd.concat(parts, ignore_index=True)
    table["CLASS_TRUE"] = table["CLASS_TRUE"].str.replace(r"^QSO_.*", "QSO", regex=True)
    table["Z_REF"] = table["Z_TRUE"]
    return add_reference_columns(table)
