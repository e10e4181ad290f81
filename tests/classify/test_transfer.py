"""Leave-one-family-out study, end to end on small mocks (real Dask, in-process training)."""

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify.data import from_table
from jpasbatch.classify.load import load_model
from jpasbatch.classify.transfer import TransferSpec, held_out, run_transfer

FAMS = ["star_pickles", "star_redrock", "gal_kcorrect", "qso_sdss_pca"]


@pytest.fixture(scope="module")
def study(tmp_path_factory, client):
    spec = TransferSpec(
        out=tmp_path_factory.mktemp("transfer"), families=FAMS, n_objects=1500,
        members=1, hidden=32, layers=2, epochs=2, patience=1, fast=True,
    )  # fmt: skip
    return spec, run_transfer(spec, client=client)


def test_only_families_with_a_sibling_are_held_out(study):
    spec, result = study
    assert held_out(FAMS) == ["star_pickles", "star_redrock"]
    assert set(result["families"]) == {"star_pickles", "star_redrock"}
    assert (spec.out / "report.md").read_text().count("(worst)") == 3


def test_held_out_model_never_saw_its_family(study):
    spec, _ = study
    for fam in ("star_pickles", "star_redrock"):
        rows = ds.dataset(spec.out / "data" / f"without_{fam}.parquet").to_table()
        assert fam not in set(rows["FAMILY"].to_pylist())
        assert "test" not in set(rows["SPLIT"].to_pylist())
        other = {"star_pickles": "star_redrock", "star_redrock": "star_pickles"}[fam]
        assert other in set(rows["FAMILY"].to_pylist())
        # each class keeps the training weight it has in the full mocks (a third each)
        train = rows.to_pandas().query("SPLIT == 'train'")
        share = train.groupby(train.CLASS.str[:3]).WEIGHT.sum()
        full = ds.dataset(spec.out / "mocks_all").to_table().to_pandas().query("SPLIT == 'train'")
        ref = full.groupby(full.CLASS.str[:3]).WEIGHT.sum()
        np.testing.assert_allclose(share.sort_index(), ref.sort_index(), rtol=1e-9)


def test_recall_matches_a_brute_force_count(study):
    spec, result = study
    fam = "star_redrock"
    test = ds.dataset(spec.out / "mocks_all").to_table().to_pandas()
    test = test[(test.SPLIT == "test") & (test.FAMILY == fam)]
    model = load_model(spec.out / "runs" / f"lofo_{fam}")

    data = from_table(pa.Table.from_pandas(test, preserve_index=False))
    probs, ok = model.predict_proba(data.flux, natural=False)
    found = sum(CLASSES[int(np.argmax(p))] == "STAR" for p, k in zip(probs, ok, strict=True) if k)
    assert result["families"][fam]["lofo"]["held_class_recall"] == pytest.approx(found / ok.sum())
    assert result["families"][fam]["lofo"]["n_held"] == ok.sum()


def test_rerun_resumes(study, client):
    spec, result = study
    stamp = (spec.out / "runs" / "lofo_star_pickles" / "model.json").stat().st_mtime_ns
    again = run_transfer(spec, client=client)
    assert (spec.out / "runs" / "lofo_star_pickles" / "model.json").stat().st_mtime_ns == stamp
    assert again["summary"] == result["summary"]
