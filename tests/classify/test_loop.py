"""The training loop without Ray: learning, determinism, checkpoints and resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score

from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.data import read_labelled
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.classify.loop import train_loop_per_worker
from jpasbatch.classify.train import TrainSpec, train
from jpasbatch.core.modelio import load_tree
from jpasbatch.distribute.ray import STATE_FILE

SMALL = {"members": 3, "hidden": 32, "layers": 3, "dropout": 0.15, "max_norm": 2.0}


def _config(toy_mocks, tmp_path, epochs, **kw):
    flux = read_labelled([toy_mocks], ["train"]).flux
    return {
        "train_paths": [str(toy_mocks)],
        "scaler": FeatureScaler.fit(flux).to_dict(),
        "model": SMALL,
        "epochs": epochs,
        "patience": 100,
        "batch_size": 128,
        "lr": 3e-3,
        "checkpoint_dir": str(tmp_path / "ckpt"),
        **kw,
    }


def test_learns_and_is_deterministic(toy_mocks, tmp_path):
    a = train_loop_per_worker(_config(toy_mocks, tmp_path / "a", 4))
    b = train_loop_per_worker(_config(toy_mocks, tmp_path / "b", 4))
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    # the toy classes are separable: validation weighted F1 (scikit-learn's) is high
    assert a["best_f1"] > 0.9
    h = pd.DataFrame(a["history"])
    assert list(h["epoch"]) == [1, 2, 3, 4] and h["loss"].iloc[-1] < h["loss"].iloc[0]


def test_resume_continues_from_the_checkpoint(toy_mocks, tmp_path):
    full = train_loop_per_worker(_config(toy_mocks, tmp_path / "full", 4))
    # an "interrupted" run: 2 epochs checkpointed, then the same run asked for 4
    train_loop_per_worker(_config(toy_mocks, tmp_path / "cut", 2))
    assert (tmp_path / "cut" / "ckpt" / STATE_FILE).exists()
    resumed = train_loop_per_worker(_config(toy_mocks, tmp_path / "cut", 4))
    assert [m["epoch"] for m in resumed["history"]] == [1, 2, 3, 4]
    # the first two epochs are the checkpoint's, not re-run
    assert (
        resumed["history"][:2] == load_tree(tmp_path / "cut" / "ckpt" / STATE_FILE)["history"][:2]
    )
    # per-epoch seeds: the resumed run ends exactly where the uninterrupted one does
    for key in full["model"]:
        torch.testing.assert_close(resumed["model"][key], full["model"][key], rtol=0, atol=0)


def test_early_stopping_keeps_the_best_epoch(toy_mocks, tmp_path):
    state = train_loop_per_worker(_config(toy_mocks, tmp_path, 50, patience=2, lr=3e-2))
    f1 = [m["val_weighted_f1"] for m in state["history"]]
    assert len(f1) < 50  # stopped early
    assert state["best_f1"] == max(f1) and state["best_epoch"] == int(np.argmax(f1)) + 1
    assert all(v <= state["best_f1"] for v in f1[state["best_epoch"] :])
    assert len(f1) - state["best_epoch"] == 2


def test_train_without_ray_saves_a_calibrated_classifier(toy_mocks, tmp_path):
    spec = TrainSpec(train=[toy_mocks], out=tmp_path, name="local", ray=False, epochs=3,
                     batch_size=128, lr=3e-3, **SMALL | {"members": 3})  # fmt: skip
    path = train(spec)
    clf = Classifier.load(path)
    assert clf.temperature > 0 and "val_ece_after" in clf.meta
    test = read_labelled([toy_mocks], ["test"])
    p, ok = clf.predict_proba(test.flux)
    np.testing.assert_allclose(p[ok].sum(1), 1.0)
    assert f1_score(test.y[ok], p[ok].argmax(1), average="weighted") > 0.9
    assert (tmp_path / "local" / "history.csv").exists() and (
        tmp_path / "local" / "history.png"
    ).exists()
    # bf16 inference agrees with fp32 on the argmax for nearly every object
    pb, _ = clf.predict_proba(test.flux, dtype=torch.bfloat16)
    assert (pb[ok].argmax(1) == p[ok].argmax(1)).mean() > 0.98
    assert np.nanmax(np.abs(pb - p)) < 0.1
