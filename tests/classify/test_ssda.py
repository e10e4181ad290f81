"""The observed label budget and held-out set of the SSDA comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from jpasbatch.catalog.schemas import BANDS


def _survey(tmp_path, toy_table):
    obs = toy_table(3000, seed=5).to_pandas()
    phot = [c for c in obs.columns if c.startswith("FLUX")]
    (tmp_path / "cat").mkdir()
    obs[["OBJECT_ID", *phot]].to_parquet(tmp_path / "cat" / "part-0.parquet")
    rng = np.random.default_rng(0)
    truth = obs[["OBJECT_ID", "CLASS", "Z"]].assign(
        MAG_R=rng.uniform(16, 25, len(obs)), IN_XMATCH=rng.random(len(obs)) < 0.2
    )
    # objects the survey lost (not in the catalogue) are in the truth table too
    extra = truth.iloc[:50].assign(OBJECT_ID=lambda d: d.OBJECT_ID + 10**8, IN_XMATCH=True)
    pd.concat([truth, extra]).to_parquet(tmp_path / "truth.parquet")
    return obs, pd.concat([truth, extra])


def test_budget_and_heldout(tmp_path, make_toy):
    from jpasbatch.classify.ssda import labelled_observed

    obs, truth = _survey(tmp_path, make_toy)
    paths = labelled_observed(tmp_path / "cat", tmp_path / "truth.parquet", tmp_path / "out",
                              budget=300, seed=1)  # fmt: skip
    adapt = pq.read_table(paths["adapt"]).to_pandas()
    held = pq.read_table(paths["heldout"]).to_pandas()
    t = truth.set_index("OBJECT_ID")
    assert len(adapt) == 300 and (adapt.SPLIT == "validation").sum() == 60
    assert t.loc[adapt.OBJECT_ID, "IN_XMATCH"].all()  # labels only where spectra exist
    assert not set(adapt.OBJECT_ID) & set(held.OBJECT_ID)
    assert set(held.OBJECT_ID) <= set(obs.OBJECT_ID)  # only catalogued objects
    # every catalogued object to r_max that is not in the budget is held out
    faint_enough = set(t.index[t.MAG_R <= 23.6]) & set(obs.OBJECT_ID)
    assert set(held.OBJECT_ID) == faint_enough - set(adapt.OBJECT_ID)
    # the cross-matched part of it: the SSDA paper's held-out set
    xm = pq.read_table(paths["heldout_xmatch"]).to_pandas()
    assert set(xm.OBJECT_ID) == set(held.OBJECT_ID) & set(t.index[t.IN_XMATCH])
    # labels and photometry travel with the right object
    np.testing.assert_array_equal(held.CLASS, t.loc[held.OBJECT_ID, "CLASS"])
    o = obs.set_index("OBJECT_ID")
    np.testing.assert_array_equal(
        held[f"FLUX_{BANDS[5]}"], o.loc[held.OBJECT_ID, f"FLUX_{BANDS[5]}"]
    )
    with pytest.raises(ValueError, match="exceeds"):
        labelled_observed(tmp_path / "cat", tmp_path / "truth.parquet", tmp_path / "o2",
                          budget=10**5)  # fmt: skip
