"""A random classifier and small catalogues for the VAC tests (no training needed)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.catalog.schemas import BANDS
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.classify.model import CommitteeMLP


def bad_rows(table):
    """The catalogue with one row of each defect the VAC must reject (rows 3, 7, 11, 12),
    and a row with too few bands that it keeps with a QUALITY flag (row 20)."""
    df = table.to_pandas()
    df.loc[3, "FLUX_J0500"] = np.inf  # BAD_FLUX
    df.loc[7, "FLUX_RELERR_J0600"] = -0.1  # NEGATIVE_ERROR
    df.loc[11, "FLUX_rSDSS"] = -1e-18  # NO_REFERENCE
    df.loc[12, "FLUX_rSDSS"] = np.nan  # NO_REFERENCE
    df.loc[20, [f"FLUX_{b}" for b in BANDS[:15]]] = np.nan  # kept, flagged: 45 bands
    return type(table).from_pandas(df, schema=table.schema, preserve_index=False)


@pytest.fixture(scope="session")
def with_bad_rows():
    """:func:`bad_rows`, for tests that build their own catalogues."""
    return bad_rows


@pytest.fixture(scope="session")
def committee(tmp_path_factory):
    """A saved 3-member committee with random weights, a prior and a temperature."""
    flux, _ = photometry_arrays(random_catalogue(2000, seed=11))
    scaler = FeatureScaler.fit(flux.astype(float))
    model = CommitteeMLP(scaler.n_features, members=3, hidden=32, layers=2, seed=5)
    clf = Classifier(model, scaler, temperature=1.3, prior=[0.5, 2.0, 0.3, 0.2])
    return clf.save(tmp_path_factory.mktemp("model") / "model.json")


@pytest.fixture(scope="session")
def catalogue_file(tmp_path_factory):
    """A plain observed-schema Parquet file, 4,000 rows in 8 row groups, with bad rows."""
    path = tmp_path_factory.mktemp("cat") / "catalogue.parquet"
    pq.write_table(bad_rows(random_catalogue(4000, seed=3)), path, row_group_size=500)
    return path
