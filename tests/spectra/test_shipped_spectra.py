"""The shipped default spectral models: files match their card's checksums, and they load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from jpasbatch.core import defaults
from jpasbatch.spectra.emulate import EmulateConfig, draw_targets, observe
from jpasbatch.spectra.predict import SpectraModel

JOB = Path(__file__).parents[2] / "jobs" / "train_spectra_default.yaml"


def test_shipped_spectral_models_match_their_checksums_and_card():
    folder = defaults.default_model(defaults.SPECTRA)
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == sorted(defaults.SPECTRA_FILES)
    for line in lines:  # an independent recomputation of every checksum
        digest, name = line.split()
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    size = sum((folder / f).stat().st_size for f in defaults.SPECTRA_FILES)
    assert size < 8e6  # a few MB
    card = json.loads((folder / "CARD.json").read_text())
    assert {"recipe", "training", "data", "evaluations", "what"} <= set(card)
    assert card["recipe"]["job_text"] == JOB.read_text()
    assert card["training"]["spec"]["fnet"] is False
    assert {"emulated_test", "real_spectra"} <= set(card["evaluations"])


def test_shipped_spectral_models_classify_emulated_spectra():
    model = SpectraModel.load(defaults.default_model(defaults.SPECTRA))
    config = EmulateConfig(n_per_class=4, seed=9, r_max=20.0)
    index, flux, _, good = observe(draw_targets(config), 9, config)
    pred = model.predict_arrays(flux, good)
    assert (pred["CLASS"].to_numpy() == index["CLASS"].to_numpy()).mean() >= 0.75
    assert np.allclose(pred[["P_STAR", "P_GALAXY", "P_QSO"]].sum(axis=1), 1, atol=1e-5)
