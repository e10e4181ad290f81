"""The shipped default models: published with their card, checked on every load."""

import json
import shutil

import numpy as np
import pytest

from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.classify.load import load_model
from jpasbatch.classify.model import CommitteeMLP
from jpasbatch.core import defaults
from jpasbatch.core.errors import InputError


def test_shipped_classifier_matches_its_checksums_and_loads():
    folder = defaults.default_model()
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == sorted(defaults.FILES)
    # an independent recomputation of every checksum
    import hashlib

    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    clf = load_model(folder)
    flux, _ = photometry_arrays(random_catalogue(200, seed=2))
    p, ok = clf.predict_proba(flux.astype(float))
    assert ok.any() and np.allclose(p[ok].sum(1), 1.0, atol=1e-5)
    card = json.loads((folder / "CARD.json").read_text())
    assert {"recipe", "training", "data", "real_sky", "leave_one_family_out"} <= set(card)
    assert "families" in card["recipe"]["job_text"]
    assert json.loads((folder / "real_sky.json").read_text())["classifier"]["macro_f1"] > 0


def test_shipped_foundation_model_matches_its_checksums_and_predicts():
    import hashlib

    from jpasbatch.foundation.predict import FoundationPredictor

    folder = defaults.default_model(defaults.FOUNDATION)
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    cat = random_catalogue(100, seed=3)
    cols, arrays = FoundationPredictor.load(folder).predict(cat)
    p = np.column_stack([cols[f"P_{c}"] for c in ("STAR", "GALAXY", "QSO_LOW", "QSO_HIGH")])
    assert np.allclose(p.sum(1), 1.0, atol=1e-4) and (cols["Z_PHOT"] >= 0).all()
    assert arrays["EMBEDDING"].shape[0] == cat.num_rows
    card = json.loads((folder / "CARD.json").read_text())
    assert card["name"] == "foundation" and "foundation:" in card["recipe"]["job_text"]
    record = json.loads((folder / "real_sky.json").read_text())
    assert set(record) == {"template", "foundation"} and record["foundation"]["qso_dz015"] >= 0


@pytest.fixture
def run(tmp_path):
    flux, _ = photometry_arrays(random_catalogue(500, seed=1))
    scaler = FeatureScaler.fit(flux.astype(float))
    clf = Classifier(CommitteeMLP(scaler.n_features, members=2, hidden=8, layers=2), scaler)
    folder = tmp_path / "run"
    clf.save(folder / "model.json")
    (folder / "real_sky.json").write_text(json.dumps({"classifier": {"macro_f1": 0.5}}))
    return folder


def test_publish_then_tampering_is_refused(run, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("mocks: {families: [star_pickles]}\n")
    checks = tmp_path / "real_check.json"
    checks.write_text(json.dumps({"all": {"classifier": {"macro_f1": 0.5}}, "sets": {}}))
    card = defaults.build_card(run, job, None, checks)
    dest = defaults.publish(run, tmp_path / "pub", card)
    defaults.verify(dest)
    assert json.loads((dest / "CARD.json").read_text())["recipe"]["job_text"] == job.read_text()
    # a changed byte in any file: refused, naming the file
    for name in defaults.FILES:
        bad = tmp_path / f"bad_{name}"
        shutil.copytree(dest, bad)
        data = bytearray((bad / name).read_bytes())
        data[len(data) // 2] ^= 1
        (bad / name).write_bytes(bytes(data))
        with pytest.raises(InputError, match=name):
            defaults.verify(bad)


def test_publish_needs_the_real_sky_record(run, tmp_path):
    (run / "real_sky.json").unlink()
    with pytest.raises(InputError, match="real_sky.json"):
        defaults.publish(run, tmp_path / "pub", {})
