"""One partition through the models: columns against independent computations, rejects."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.stats import entropy as scipy_entropy

from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.catalog.schemas import BANDS, CLASSES, VAC
from jpasbatch.classify.classifier import Classifier
from jpasbatch.physics.filters import jpas
from jpasbatch.templatefit import fit_photometry
from jpasbatch.vac.baseline import grids
from jpasbatch.vac.kernel import FEW_BANDS, process_partition
from jpasbatch.vac.models import load_models


def test_partition_columns_and_rejects(committee, catalogue_file):
    table = pq.read_table(catalogue_file)
    ids = table["OBJECT_ID"].to_numpy()
    # without the template fit, a row without rSDSS flux has nothing to describe it
    bare = load_models(committee, templates=None, class_source="classifier")
    res = process_partition(table, bare, source="cat.parquet", first_row=100)
    rej = res.rejects.to_pandas().set_index("SOURCE_ROW")
    assert rej["REASON"].to_dict() == {
        103: "BAD_FLUX",
        107: "NEGATIVE_ERROR",
        111: "NO_REFERENCE",
        112: "NO_REFERENCE",
    }
    assert res.vac.num_rows + res.rejects.num_rows == table.num_rows

    models = load_models(committee)
    res = process_partition(table, models, source="cat.parquet", first_row=100, provenance_id="abc")
    # every row once: in the VAC or in the rejects, with the defect as reason; the
    # template fit keeps the rows without rSDSS (no classifier output, QUALITY bit 4)
    assert res.vac.num_rows + res.rejects.num_rows == table.num_rows
    rej = res.rejects.to_pandas().set_index("SOURCE_ROW")
    assert rej["REASON"].to_dict() == {103: "BAD_FLUX", 107: "NEGATIVE_ERROR"}
    assert set(rej["OBJECT_ID"]) == set(ids[[3, 7]])
    everything = res.vac.to_pandas()
    no_ref = everything["OBJECT_ID"].isin(ids[[11, 12]]).to_numpy()
    assert (everything.loc[no_ref, "QUALITY"] & 4 == 4).all()
    assert everything.loc[no_ref, "P_STAR"].isna().all()
    assert (everything.loc[no_ref, "CLASS_ANN"] == "").all()
    assert everything.loc[no_ref, "CLASS_TEMPLATE"].isin(CLASSES).all()
    assert np.isnan(res.arrays["P_MEMBERS"][no_ref]).all()
    # the rest, checked as before
    res.arrays = {k: v[~no_ref] for k, v in res.arrays.items()}
    vac = everything[~no_ref].reset_index(drop=True)
    assert list(vac["OBJECT_ID"]) == [i for k, i in enumerate(ids) if k not in (3, 7, 11, 12)]
    assert res.vac.schema.names[: len(VAC)] == VAC.names

    keep = np.isin(ids, vac["OBJECT_ID"])
    flux, relerr = photometry_arrays(table)
    # probabilities: the classifier called directly on the same rows
    expected, _ = Classifier.load(committee).predict_proba(flux[keep].astype(float))
    got = vac[[f"P_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert list(vac["CLASS_ANN"]) == [CLASSES[k] for k in expected.argmax(1)]
    # the template fit, the kernel called directly on the same rows; CLASS is its class
    # (no real-sky record says the classifier transfers better)
    fit = fit_photometry(flux[keep].astype(float), np.abs(flux[keep]) * relerr[keep], grids())
    assert list(vac["CLASS_TEMPLATE"]) == list(fit.to_columns()["CLASS_TEMPLATE"])
    assert list(vac["CLASS"]) == list(vac["CLASS_TEMPLATE"])
    np.testing.assert_allclose(vac["Z_TEMPLATE"], fit.z, rtol=1e-6)
    np.testing.assert_allclose(vac["Z_PHOT"], vac["Z_TEMPLATE"])
    np.testing.assert_allclose(res.arrays["PZ_TEMPLATE"], fit.pz_chosen()[1], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(vac["ENTROPY"], scipy_entropy(expected, base=2, axis=1), atol=1e-5)
    # members: shape (N, K, 4), their median (renormalised) is the uncalibrated committee
    members = res.arrays["P_MEMBERS"]
    assert members.shape == (keep.sum(), 3, 4)
    median = np.median(members, axis=1)
    raw, _ = Classifier.load(committee).predict_proba(
        flux[keep].astype(float), calibrated=False, natural=False
    )
    np.testing.assert_allclose(median / median.sum(1, keepdims=True), raw, atol=1e-6)
    # rSDSS AB magnitude with astropy's units
    r = jpas()["rSDSS"].pivot_wavelength * u.AA
    f = flux[keep, BANDS.index("rSDSS")] * u.erg / u.s / u.cm**2 / u.AA
    np.testing.assert_allclose(vac["MAG_R"], f.to(u.ABmag, u.spectral_density(r)).value, atol=1e-4)
    # observed bands, by a loop
    n = [
        sum(np.isfinite(a) and np.isfinite(b) and b > 0 for a, b in zip(fr, er, strict=True))
        for fr, er in zip(flux[keep], relerr[keep], strict=True)
    ]
    assert list(vac["N_BANDS"]) == n
    assert ((vac["QUALITY"] & FEW_BANDS) > 0).tolist() == [k < 50 for k in n]
    assert vac.loc[vac["OBJECT_ID"] == ids[20], "N_BANDS"].item() == 45
    assert (vac["PROVENANCE_ID"] == "abc").all()


def test_template_fit_in_batches_gives_the_same_rows(committee, catalogue_file, monkeypatch):
    # the fit runs batch_size rows at a time (its memory is ~50 kB a row); batches must
    # not change a value. 300 rows: the fit is the slow part of the VAC, and make test is
    # at its time limit
    from jpasbatch.vac import baseline

    table = pq.read_table(catalogue_file).slice(0, 300)
    models = load_models(committee)
    whole = process_partition(table, models, source="x", batch_size=65536)
    sizes, fit = [], baseline.template_fit
    monkeypatch.setattr(baseline, "template_fit", lambda f, *a: sizes.append(len(f)) or fit(f, *a))
    batched = process_partition(table, models, source="x", batch_size=7)
    assert max(sizes) == 7 and len(sizes) > 2 and whole.vac.num_rows > 200
    assert sum(sizes) == whole.vac.num_rows
    # a classifier batch larger than the fit's cap: the fit keeps to its cap
    from jpasbatch.vac import models as vac_models

    sizes.clear()
    monkeypatch.setattr(vac_models, "TEMPLATE_BATCH", 100)
    capped = process_partition(table, models, source="x", batch_size=65536)
    assert max(sizes) == 100 and sum(sizes) == whole.vac.num_rows
    # the classifier's batch is unchanged here: every column and array is the same
    assert capped.vac.equals(whole.vac)
    for name, values in whole.arrays.items():
        np.testing.assert_array_equal(capped.arrays[name], values, err_msg=name)
    # batch_size 7 also batches the classifier, whose float32 sums may move by an ulp
    # with the batch; the template fit's columns and p(z) must not move at all
    fit_columns = [c for c in whole.vac.column_names if "TEMPLATE" in c or c.startswith("CHI2")]
    assert len(fit_columns) >= 10
    assert batched.vac.select(fit_columns).equals(whole.vac.select(fit_columns))
    np.testing.assert_array_equal(batched.arrays["PZ_TEMPLATE"], whole.arrays["PZ_TEMPLATE"])


def test_models_are_loaded_once_per_process(committee):
    assert load_models(committee) is load_models(committee)


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_partitions(committee, catalogue_file, n):
    table = pq.read_table(catalogue_file).slice(0, n)
    res = process_partition(table, load_models(committee), source="x")
    assert res.vac.num_rows == n and res.rejects.num_rows == 0


def test_foundation_model_keeps_its_own_batch_size(committee, catalogue_file, tmp_path):
    """The VAC's classifier batch (65,536 rows) must not reach the transformer, whose
    activations grow with rows x tokens x 1024: it runs in its own, small batches."""
    import torch

    from jpasbatch.foundation.model import FoundationModel
    from jpasbatch.foundation.predict import FoundationPredictor, default_batch_size
    from jpasbatch.foundation.tokens import TokenNorm, encode_table

    table = pq.read_table(catalogue_file).slice(0, 300)
    torch.manual_seed(0)
    tiny = {"d_model": 16, "n_heads": 2, "enc_layers": 1, "enc_ffn": 32, "dec_layers": 1}
    fm = FoundationPredictor(
        FoundationModel(**tiny, dec_ffn=32), TokenNorm.fit(encode_table(table))
    )
    path = fm.save(tmp_path / "fm.json")
    models = load_models(committee, path)
    seen: list[int] = []
    models.foundation.model.register_forward_pre_hook(lambda m, a: seen.append(len(a[1])))
    res = process_partition(table, models, source="x", batch_size=65536)
    assert max(seen) == default_batch_size("cpu") < res.vac.num_rows
    assert np.isfinite(res.vac["Z_PHOT"].to_numpy()).all()
