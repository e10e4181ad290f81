"""Training: the loop without Ray and its resume, a Ray Train run with domain adaptation,
and the saved predictor on OBSERVED-schema tables."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from jpasbatch.catalog.schemas import CLASSES, OBSERVED, PHYSICAL_LABELS
from jpasbatch.foundation.predict import FoundationPredictor
from jpasbatch.foundation.train import FoundationSpec, train

from .conftest import TINY, joined

FAST = {"batch_size": 32, "steps_per_epoch": 4, "max_val_rows": 200, "warmup_steps": 2, **TINY}
COLUMNS = [f"P_{c}" for c in CLASSES] + ["Z_PHOT", "Z_PHOT_ERR"]
COLUMNS += [c for p in PHYSICAL_LABELS for c in (p, f"{p}_ERR")]


def test_loop_without_ray_resumes_where_it_stopped(mock_dir, tmp_path):
    spec = FoundationSpec(train=[mock_dir], out=tmp_path, name="r", ray=False, epochs=1, **FAST)
    train(spec)
    first = pd.read_csv(tmp_path / "r" / "history.csv")
    # the same run with more epochs continues from the checkpoint
    train(spec.model_copy(update={"epochs": 3}))
    history = pd.read_csv(tmp_path / "r" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert history["loss"][0] == first["loss"][0]
    # and repeats an uninterrupted run exactly
    straight = spec.model_copy(update={"epochs": 3, "name": "s"})
    train(straight)
    again = pd.read_csv(tmp_path / "s" / "history.csv")
    np.testing.assert_allclose(again["loss"], history["loss"], rtol=1e-5)


def test_ray_train_run_with_domain_adaptation(ray_session, mock_dir, observed_tile, tmp_path):
    root = observed_tile["root"]
    spec = FoundationSpec(
        train=[mock_dir], out=tmp_path, name="ray", workers=2, epochs=2, mmd=True,
        observed=[root / "catalogue.parquet"], external=[root / "external"], mmd_batch=32,
        max_failures=0, **FAST,
    )  # fmt: skip
    path = train(spec)
    history = pd.read_csv(tmp_path / "ray" / "history.csv")
    assert list(history["workers"]) == [2, 2] and list(history["epoch"]) == [1, 2]
    assert (history["mmd2"] > 0).all() and history["ess_frac"].between(0, 1).all()
    assert len(list((tmp_path / "ray").glob("checkpoint_*/state.json"))) >= 1
    pred = FoundationPredictor.load(path)
    assert pred.meta["epochs_run"] == 2 and pred.meta["parameters"] > 0
    # rerun with more epochs: Ray Train resumes from the last checkpoint
    train(spec.model_copy(update={"epochs": 3}))
    again = pd.read_csv(tmp_path / "ray" / "history.csv")
    assert list(again["epoch"]) == [1, 2, 3]
    np.testing.assert_allclose(again["loss"][:2], history["loss"], rtol=1e-6)


@pytest.fixture(scope="module")
def predictor(mock_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fpred")
    spec = FoundationSpec(train=[mock_dir], out=out, name="p", ray=False, epochs=1, **FAST)
    return FoundationPredictor.load(train(spec))


def test_predictor_on_an_observed_schema_table(predictor, observed_tile, tmp_path):
    cat, ext = observed_tile["catalogue"], observed_tile["external"]
    assert cat.schema.equals(OBSERVED, check_metadata=False)
    cols, arrays = predictor.predict(cat, batch_size=64)
    n = cat.num_rows
    assert set(COLUMNS) <= set(cols) and all(len(v) == n for v in cols.values())
    assert arrays["EMBEDDING"].shape == (n, 32) and arrays["EMBEDDING"].dtype == np.float32
    p = np.stack([cols[f"P_{c}"] for c in CLASSES], 1)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert (cols["Z_PHOT"] >= 0).all() and (cols["Z_PHOT_ERR"] > 0).all()
    assert (cols["TEFF"] > 0).all() and (cols["EW_HALPHA_ERR"] > 0).all()
    # the external columns, when present, join the context
    full, _ = predictor.predict(joined(cat, ext), batch_size=64)
    assert (full["N_CONTEXT"] > cols["N_CONTEXT"]).all()
    # a reduced context uses only its tokens
    t1, _ = predictor.predict(joined(cat, ext), "T1+broad+morph")
    assert t1["N_CONTEXT"].max() <= 13 + 6 + 2
    # the checksum is the saved file's and survives a reload
    path = predictor.save(tmp_path / "model.json")
    assert FoundationPredictor.load(path).checksum == predictor.checksum
    # bf16 agrees with float32 on the class and roughly on the redshift
    low, _ = predictor.predict(cat, dtype="bfloat16")
    agree = np.mean(np.argmax(np.stack([low[f"P_{c}"] for c in CLASSES], 1), 1) == p.argmax(1))
    assert agree > 0.9
    assert np.median(np.abs(low["Z_PHOT"] - cols["Z_PHOT"])) < 0.05


def test_missing_bands_equal_absent_columns(predictor, observed_tile):
    """Inference with some bands missing equals inference with those columns dropped."""
    cat = observed_tile["catalogue"].slice(0, 300)
    dropped = ["J0660", "J0670", "gSDSS"]
    without = cat.drop_columns(
        [f"FLUX_{b}" for b in dropped] + [f"FLUX_RELERR_{b}" for b in dropped]
    )
    nan = cat
    for b in dropped:
        k = nan.column_names.index(f"FLUX_{b}")
        nan = nan.set_column(k, f"FLUX_{b}", pa.nulls(nan.num_rows, nan.schema.field(k).type))
    context = [c for c in OBSERVED.names if c.startswith("FLUX_") and "RELERR" not in c]
    excluded = [t[5:] for t in context if t[5:] not in dropped] + ["CLASS_STAR"]
    a, ea = predictor.predict(without)
    b, _ = predictor.predict(nan)
    c, ec = predictor.predict(cat, excluded)
    for k in COLUMNS:
        np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(a[k], c[k], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(ea["EMBEDDING"], ec["EMBEDDING"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(a["N_CONTEXT"]), torch.from_numpy(c["N_CONTEXT"]))


def test_cli_predict_and_evaluation_report(predictor, mock_dir, observed_tile, tmp_path):
    import json

    import pyarrow.parquet as pq

    from jpasbatch.cli import main

    model = predictor.save(tmp_path / "model.json")
    root = observed_tile["root"]
    out = tmp_path / "pred.parquet"
    args = ["foundation-predict", str(model), str(root / "catalogue.parquet"), "--out", str(out),
            "--external", str(root / "external"), "--context", "T1+T2+broad+morph"]  # fmt: skip
    assert main(args) == 0
    got = pq.read_table(out)
    assert got.num_rows == observed_tile["catalogue"].num_rows and "Z_PHOT" in got.column_names
    assert got.schema.metadata[b"foundation_model_checksum"] == predictor.checksum.encode()
    assert np.load(out.with_suffix(".embedding.npy")).shape == (got.num_rows, 32)
    # the report on two labelled sets standing in for Test-Real / Test-Synth
    tests = tmp_path / "tests"
    tests.mkdir()
    for name, part in (("test_real", 0), ("test_synth", 1)):
        pq.write_table(
            pq.read_table(mock_dir / f"part-{part:05d}.parquet"), tests / f"{name}.parquet"
        )
    report = tmp_path / "report"
    assert main(["foundation-evaluate", f"tiny={model}", "--test-dir", str(tests),
                 "--out", str(report)]) == 0  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["tiny"]) == {"test_real", "test_synth"}
    assert set(metrics["tiny"]["test_real"]) == {"all", "T1+T2+BB+M", "T1+BB+M"}
    assert "Photometric redshifts" in (report / "report.html").read_text()
    # bf16 beside fp32: the fp32 scores are the report's own all-band scores
    prec, scores = metrics["precision"]["tiny"], metrics["tiny"]["test_real"]["all"]
    assert prec["weighted_f1_float32"] == pytest.approx(scores["class3_all"]["weighted_f1"])
    assert 0.9 <= prec["class_agreement"] <= 1 and 0 <= prec["max_abs_dz"] < 0.5
    assert "bfloat16 against float32" in (report / "summary.md").read_text()
    assert main(["foundation-evaluate", f"tiny={model}", "--test-dir", str(tmp_path),
                 "--out", str(report)]) == 2  # fmt: skip


def test_vac_with_the_foundation_model(predictor, observed_tile, client, tmp_path):
    """``jpasbatch infer`` with a foundation model: its columns and embeddings join the VAC,
    equal to the predictor run directly on the same rows."""
    import pyarrow.parquet as pq

    from jpasbatch.catalog.cuts import photometry_arrays
    from jpasbatch.classify.classifier import Classifier
    from jpasbatch.classify.features import FeatureScaler
    from jpasbatch.classify.model import CommitteeMLP
    from jpasbatch.vac import arrays
    from jpasbatch.vac.infer import InferSpec, infer
    from jpasbatch.vac.targets import read_vac

    cat = observed_tile["catalogue"]
    scaler = FeatureScaler.fit(photometry_arrays(cat)[0].astype(float))
    committee = Classifier(CommitteeMLP(scaler.n_features, members=2, hidden=16, layers=2), scaler)
    pq.write_table(cat, tmp_path / "cat.parquet", row_group_size=cat.num_rows // 3 + 1)
    spec = InferSpec(
        catalogue=tmp_path / "cat.parquet",
        model=committee.save(tmp_path / "committee.json"),
        foundation=predictor.save(tmp_path / "foundation.json"),
        out=tmp_path / "vac",
        rows_per_partition=cat.num_rows // 3 + 1,
    )
    summary = infer(spec, client=client, progress=False)
    assert summary["partitions"] >= 3
    vac = read_vac(spec.out).set_index("OBJECT_ID")
    kept = cat.to_pandas().set_index("OBJECT_ID").loc[vac.index]
    direct, direct_arrays = predictor.predict(pa.Table.from_pandas(kept.reset_index()))
    np.testing.assert_allclose(vac["Z_PHOT_OJALA"], direct["Z_PHOT"], rtol=1e-5, atol=1e-6)
    # no real-sky record beside the foundation model: Z_PHOT stays the template fit's
    np.testing.assert_allclose(vac["Z_PHOT"], vac["Z_TEMPLATE"])
    np.testing.assert_allclose(vac["P_QSO_HIGH_OJALA"], direct["P_QSO_HIGH"], atol=1e-6)
    np.testing.assert_allclose(vac["TEFF"], direct["TEFF"], rtol=1e-5)
    embedding = {}
    for part in sorted((spec.out / "dataset").glob("*.parquet")):
        stored = arrays.read_partition_arrays(spec.out, part.stem)
        embedding |= dict(zip(stored["OBJECT_ID"], stored["EMBEDDING"], strict=True))
    np.testing.assert_allclose(
        np.stack([embedding[i] for i in vac.index]), direct_arrays["EMBEDDING"], atol=1e-5
    )
    assert pq.read_schema(next((spec.out / "dataset").glob("*.parquet"))).field("Z_PHOT")
