"""The real-sky check's labels, matching and scores, against hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from sklearn.metrics import f1_score

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.core.errors import InputError
from jpasbatch.spectra.realsets import discover, four_class, labels, match_labels
from jpasbatch.vac.realcheck import scores


def test_four_classes_split_qsos_at_2_1():
    got = four_class(pd.Series(["QSO", "qso ", "STAR", "GALAXY"]), pd.Series([2.1, 1.0, 0, 0.3]))
    assert got.tolist() == ["QSO_HIGH", "QSO_LOW", "STAR", "GALAXY"]


def test_labels_of_each_layout(tmp_path):
    sdss = tmp_path / "sdss"
    (sdss / "spectra" / "3655").mkdir(parents=True)
    (sdss / "spectra" / "3655" / "spec-1.fits").write_bytes(b"x")
    pd.DataFrame({"file": ["spectra/3655/spec-1.fits"], "CLASS": ["QSO"], "Z": [2.5]}).to_csv(
        sdss / "labels.csv", index=False
    )
    desi = tmp_path / "desi"
    desi.mkdir()
    (desi / "coadd-7.fits").write_bytes(b"x")
    cols = [
        fits.Column(name="TARGETID", array=np.array([39]), format="K"),
        fits.Column(name="Z", array=np.array([-0.0001]), format="D"),
        fits.Column(name="SPECTYPE", array=np.array(["STAR"]), format="6A"),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="REDSHIFTS")]
                 ).writeto(desi / "redrock-7.fits")  # fmt: skip
    sets = {s.name: s for s in discover(tmp_path)}
    assert sets["sdss"].labels.to_dict("records") == [
        {"SPECNAME": "spec-1.fits", "ID": "", "CLASS_TRUE": "QSO_HIGH", "Z_TRUE": 2.5}
    ]
    assert labels(desi).to_dict("records") == [
        {"SPECNAME": "coadd-7.fits", "ID": "39", "Z_TRUE": 0.0, "CLASS_TRUE": "STAR"}
    ]
    vac = pd.DataFrame({"SPECNAME": ["spec-1.fits", "coadd-7.fits", "coadd-7.fits"],
                        "ID": ["3655-1", "39", "40"]})  # fmt: skip
    m = match_labels(vac, pd.concat([sets["sdss"].labels, sets["desi"].labels]))
    assert sorted(m["ID"]) == ["3655-1", "39"]


def test_scores_against_sklearn_and_a_loop():
    rng = np.random.default_rng(3)
    classes = np.array(["STAR", "GALAXY", "QSO_LOW", "QSO_HIGH"])
    truth = classes[rng.integers(0, 4, 300)]
    pred = np.where(rng.random(300) < 0.7, truth, classes[rng.integers(0, 4, 300)])
    zt = rng.uniform(0, 3, 300)
    zp = zt + rng.normal(0, 0.1, 300) * (1 + zt)
    rows = pd.DataFrame({"CLASS_TRUE": truth, "C": pred, "Z_TRUE": zt, "Z": zp})
    s = scores(rows, "C", "Z")
    ref = f1_score(truth, pred, labels=classes, average=None)
    assert [s["f1"][c] for c in classes] == pytest.approx(ref)
    assert s["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    qso = np.isin(truth, ["QSO_LOW", "QSO_HIGH"])
    assert s["qso_completeness"] == pytest.approx(np.isin(pred[qso], classes[2:]).mean())
    dz = np.abs(zp - zt) / (1 + zt)
    assert s["qso_dz015"] == pytest.approx((dz[qso] < 0.15).mean())
    r = ((zp - zt) / (1 + zt))[truth == "GALAXY"]
    assert s["galaxy_nmad"] == pytest.approx(1.48 * np.median(np.abs(r - np.median(r))))


def test_class_source_follows_the_real_sky_record(tmp_path):
    import json

    from jpasbatch.vac.infer import REAL_SKY, InferSpec, class_source

    (tmp_path / "model.json").write_bytes(b"")
    spec = InferSpec(catalogue=tmp_path, model=tmp_path)
    assert class_source(spec) == "template"  # no evidence: the physics baseline
    record = {"template": {"macro_f1": 0.78}, "classifier": {"macro_f1": 0.81}}
    (tmp_path / REAL_SKY).write_text(json.dumps(record))
    assert class_source(spec) == "classifier"
    record["classifier"]["macro_f1"] = 0.60
    (tmp_path / REAL_SKY).write_text(json.dumps(record))
    assert class_source(spec) == "template"
    record["combined"] = {"macro_f1": 0.82}
    (tmp_path / REAL_SKY).write_text(json.dumps(record))
    assert class_source(spec) == "combined"
    assert class_source(spec.model_copy(update={"class_source": "classifier"})) == "classifier"
    assert class_source(InferSpec(catalogue=tmp_path)) == "template"


def test_z_source_follows_the_foundation_models_record(tmp_path):
    import json

    from jpasbatch.vac.infer import REAL_SKY, InferSpec, z_source

    fm = tmp_path / "fm"
    fm.mkdir()
    (fm / "model.json").write_bytes(b"")
    spec = InferSpec(catalogue=tmp_path, foundation=fm)
    assert z_source(spec) == "template"  # no evidence: the physics baseline
    # the mean of the QSO and galaxy |dz| < 0.15 fractions decides: (0.95+0.60)/2 vs (0.80+0.80)/2
    record = {"template": {"qso_dz015": 0.95, "galaxy_dz015": 0.60},
              "foundation": {"qso_dz015": 0.80, "galaxy_dz015": 0.80}}  # fmt: skip
    (fm / REAL_SKY).write_text(json.dumps(record))
    assert z_source(spec) == "foundation"
    record["foundation"]["galaxy_dz015"] = 0.70
    (fm / REAL_SKY).write_text(json.dumps(record))
    assert z_source(spec) == "template"
    record["foundation"]["galaxy_dz015"] = None  # not measured: no evidence
    (fm / REAL_SKY).write_text(json.dumps(record | {"template": {}}))
    assert z_source(spec) == "template"
    assert z_source(spec.model_copy(update={"z_source": "foundation"})) == "foundation"
    assert z_source(InferSpec(catalogue=tmp_path)) == "template"
    alone = InferSpec(catalogue=tmp_path, model=fm, foundation=fm, templates="none")
    assert z_source(alone) == "foundation"
    with pytest.raises(ValueError, match="needs a foundation model"):
        InferSpec(catalogue=tmp_path, z_source="foundation")


def test_combined_class_is_the_product_of_the_two():
    from jpasbatch.vac.baseline import combined_class

    p_ann = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [np.nan] * 4])
    p_tpl = np.array([[0.2, 0.6, 0.1, 0.1], [0.05, 0.05, 0.45, 0.45], [0.1, 0.1, 0.1, 0.7]])
    # 0.14 vs 0.06 -> STAR; 0.315 vs 0.045 -> QSO_LOW; no classifier -> the template's class
    assert combined_class(p_ann, p_tpl).tolist() == ["STAR", "QSO_LOW", "QSO_HIGH"]


def test_real_check_end_to_end_with_the_shipped_models(tmp_path):
    """The chain on a set of survey-format files (SDSS spec-lite, LAMOST- and DESI-like
    tables, one corrupt file): files conserved, every method scored as an independent
    recomputation from ``objects.csv`` says, and the foundation model's record written."""
    import json
    import shutil

    from jpasbatch.core import defaults
    from jpasbatch.spectra.examples import make_examples
    from jpasbatch.vac.infer import InferSpec, z_source
    from jpasbatch.vac.realcheck import real_check, record

    folder = tmp_path / "real" / "sdss_like"
    files = make_examples(folder / "spectra")
    sdss = [f for f in files if f.name.startswith("spec-")][:5]  # the corrupt one is the sixth
    truth = [("STAR", 0.0), ("GALAXY", 0.12), ("GALAXY", 0.45), ("QSO", 1.2), ("QSO", 2.6)]
    pd.DataFrame(
        {"file": [f"spectra/{f.name}" for f in sdss], "CLASS": [c for c, _ in truth],
         "Z": [z for _, z in truth]}
    ).to_csv(folder / "labels.csv", index=False)  # fmt: skip
    foundation = tmp_path / "fm"
    foundation.mkdir()
    for name in ("model.json", "model.safetensors"):  # as a training run has them
        shutil.copy(defaults.default_model(defaults.FOUNDATION) / name, foundation)
    out = tmp_path / "out"
    figures = real_check(tmp_path / "real", out, model=defaults.default_model(),
                         foundation=foundation, templates="coarse", progress=False)  # fmt: skip
    s = figures["sets"]["sdss_like"]
    assert s["files_conserved"] and s["spectra_rejected"] == 1 and s["files"] == len(files)
    assert s["vac_rows"] == s["spectra_written"] == len(files) - 1 and s["labelled"] == 5
    rows = pd.read_csv(out / "objects.csv")
    # the foundation model's class is its most probable one
    p = rows[[f"P_{c}_OJALA" for c in CLASSES]].to_numpy()
    assert (rows["CLASS_OJALA"] == np.asarray(CLASSES)[p.argmax(1)]).all()
    classes = list(CLASSES)
    columns = {"template": "CLASS_TEMPLATE", "classifier": "CLASS_ANN",
               "combined": "CLASS_COMBINED", "foundation": "CLASS_OJALA"}  # fmt: skip
    for method, column in columns.items():
        got = s["scores"][method]
        ref = f1_score(rows["CLASS_TRUE"], rows[column], labels=classes, average=None)
        present = [c in set(rows["CLASS_TRUE"]) for c in classes]
        assert got["macro_f1"] == pytest.approx(ref[present].mean()), method
    dz = np.abs(rows["Z_PHOT_OJALA"] - rows["Z_TRUE"]) / (1 + rows["Z_TRUE"])
    qso = rows["CLASS_TRUE"].str.startswith("QSO")
    assert s["scores"]["foundation"]["qso_dz015"] == pytest.approx((dz[qso] < 0.15).mean())
    # the record beside the foundation model is what infer's --z-from auto reads
    path = record(figures, foundation, "foundation")
    assert set(json.loads(path.read_text())) == {"template", "foundation"}
    overall = figures["all"]["all"]
    mean = {m: np.mean([overall[m]["qso_dz015"], overall[m]["galaxy_dz015"]])
            for m in ("template", "foundation")}  # fmt: skip
    best = "foundation" if mean["foundation"] > mean["template"] else "template"
    assert z_source(InferSpec(catalogue=tmp_path, foundation=foundation)) == best
    # a published model is never rewritten (its checksums would no longer match)
    with pytest.raises(InputError, match="published"):
        record(figures, defaults.default_model(), "classifier")


def test_record_refuses_a_published_model_before_the_run(tmp_path, capsys):
    from jpasbatch.cli import main
    from jpasbatch.core import defaults

    shipped = str(defaults.default_model())
    assert main(["real-check", str(tmp_path), "--model", shipped, "--record"]) == 2
    assert "a model being judged" in capsys.readouterr().err
