"""Independent photo-z reference on the foundation study's data.

scikit-learn's gradient-boosted trees on f_j / f_i and the i magnitude, trained on the
mock galaxies (SPLIT == train) and tested on the same test sets as the transformer:
what the mocks support across the template-family gap. Run in the study's scratch
folder: ``python $REPO/docs/foundation_study/photoz_reference.py``.
"""

import glob

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.ensemble import HistGradientBoostingRegressor

from jpasbatch.catalog.schemas import BANDS
from jpasbatch.foundation.evaluate import i_magnitude, photoz_stats


def features(df: pd.DataFrame) -> np.ndarray:
    """f_j / f_i for the 60 bands (NaN where missing: the trees handle it) and -2.5 log f_i."""
    flux = df[[f"FLUX_{b}" for b in BANDS]].to_numpy(float)
    fi = df["FLUX_iSDSS"].to_numpy(float)
    with np.errstate(all="ignore"):
        return np.column_stack([flux / fi[:, None], -2.5 * np.log10(np.clip(fi, 1e-30, None))])


mocks = pd.concat(pd.read_parquet(f) for f in sorted(glob.glob("fm/mocks/*.parquet")))
train = mocks[(mocks.SPLIT == "train") & (mocks.CLASS == "GALAXY")]
trees = HistGradientBoostingRegressor(max_iter=400, learning_rate=0.1)
trees.fit(features(train), np.log1p(train.Z))
print(f"trained on {len(train):,} mock galaxies")
for name in ["test_real", "test_synth", "test_real_deep"]:
    test = pd.read_parquet(f"fm/{name}.parquet")
    gal = (test.CLASS == "GALAXY").to_numpy()
    bright = i_magnitude(pa.Table.from_pandas(test))[gal] < 21
    z_phot, z_spec = np.expm1(trees.predict(features(test[gal]))), test.Z[gal].to_numpy()
    print(name, "all:", photoz_stats(z_phot, z_spec))
    print(name, "i < 21:", photoz_stats(z_phot[bright], z_spec[bright]))
