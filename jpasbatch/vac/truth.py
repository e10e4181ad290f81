"""The VAC against the emulator's hidden truth: how well the catalogue a user gets is classified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify.evaluate import PAPER_F1
from jpasbatch.vac.targets import read_vac


def vac_against_truth(
    vac_dir: str | Path, truth_dir: str | Path, out: str | Path, *, r_max: float = 23.6
) -> dict:
    """Classification report of the VAC's probabilities against the emulator's classes.

    Every VAC object whose *observed* rSDSS magnitude (the VAC's ``MAG_R``) is at
    most ``r_max`` counts once, at the abundances of the emulated sky (no
    reweighting), binned by that observed magnitude: the numbers a user who
    selects from the VAC would see, on the same axis as the job report's
    expected counts. The truth supplies only the classes.
    """
    from jpasbatch.classify.report import classification_report
    from jpasbatch.physics.plots import OBSERVED_R

    cols = ["OBJECT_ID", "MAG_R", *[f"P_{c}" for c in CLASSES]]
    vac = read_vac(vac_dir, cols)
    truth = pd.read_parquet(truth_dir, columns=["OBJECT_ID", "CLASS"])
    both = vac.merge(truth, on="OBJECT_ID", how="inner", validate="one_to_one")
    both = both[both["MAG_R"] <= r_max]
    probs = both[[f"P_{c}" for c in CLASSES]].to_numpy(np.float64)
    y = both["CLASS"].map({c: k for k, c in enumerate(CLASSES)}).to_numpy()
    return classification_report(
        out,
        probs,
        y,
        both["MAG_R"].to_numpy(float),
        title=f"VAC against the emulator's truth (observed r <= {r_max}, sky abundances)",
        paper=PAPER_F1,
        mag_label=OBSERVED_R,
    )
