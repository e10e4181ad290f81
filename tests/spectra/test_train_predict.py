"""The training loop (plain PyTorch and Ray Train), resume, the saved model and predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from jpasbatch.spectra.emulate import CLASSES
from jpasbatch.spectra.loop import train_loop_per_worker
from jpasbatch.spectra.predict import SpectraModel
from jpasbatch.spectra.store import SpectraStore
from jpasbatch.spectra.train import SpectraTrainSpec, train

LOOP = {
    "task": "regressor",
    "target_class": "QSO",
    "model": {"members": 3, "channels": (4, 4, 8), "hidden": 8},
    "batch_size": 8,
    "threads": 1,
    "patience": 10,
}


def test_loop_resumes_exactly_where_it_stopped(tiny_emulated, tmp_path):
    base = LOOP | {"data": str(tiny_emulated)}
    first = train_loop_per_worker(base | {"epochs": 1, "checkpoint_dir": str(tmp_path / "a")})
    assert first["epoch"] == 1 and len(first["history"]) == 1
    resumed = train_loop_per_worker(base | {"epochs": 2, "checkpoint_dir": str(tmp_path / "a")})
    straight = train_loop_per_worker(base | {"epochs": 2, "checkpoint_dir": str(tmp_path / "b")})
    assert resumed["epoch"] == 2 and len(resumed["history"]) == 2
    assert resumed["history"][0] == first["history"][0]
    for k, v in straight["model"].items():
        assert torch.allclose(resumed["model"][k].float(), v.float(), atol=1e-6), k
    h = resumed["history"][-1]
    assert {"loss", "val_mae", "val_member_mae", "samples_per_s"} <= set(h)
    assert resumed["hparams"]["members"] == 3


def test_train_without_ray_saves_a_model_that_predicts(tiny_emulated, tmp_path, tiny):
    spec = SpectraTrainSpec(data=tiny_emulated, out=tmp_path, name="m", ray=False, **tiny)
    run = train(spec, progress=False)
    assert (run / "model.json").exists() and (run / "history.png").exists()
    for part in ("classifier", "z_galaxy", "z_qso", "fnet"):
        assert len(pd.read_csv(run / f"history_{part}.csv")) == (
            tiny["fnet_epochs"] if part == "fnet" else tiny["epochs"]
        )
    model = SpectraModel.load(run)
    assert set(model.val_mae) == {"GALAXY", "QSO"}
    st = SpectraStore(tiny_emulated)
    flux, _, good = st.arrays(np.arange(20))
    pred = model.predict_arrays(flux, good)
    p = pred[[f"P_{c}" for c in CLASSES]].to_numpy()
    assert np.allclose(p.sum(1), 1, atol=1e-5)
    assert (pred["Z"][pred["CLASS"] == "STAR"] == 0).all()
    assert ((pred["Z"] >= 0) & (pred["Z"] <= 5)).all()
    # the class's redshift is its ensemble's mean, with the ensemble's spread as error
    qso = pred["CLASS"] == "QSO"
    assert np.allclose(pred["Z"][qso], pred["Z_QSO"][qso])
    assert np.array_equal(pred["ROBUST"][qso], pred["Z_QSO_ERR"][qso] <= model.val_mae["QSO"])
    # the member-by-member loop (CPU default) gives the same answers as the grouped pass
    assert model.member_loop
    naive = model.predict_arrays(flux, good, member_loop=False)
    num = pred.select_dtypes("number").columns
    assert np.allclose(naive[num].to_numpy(float), pred[num].to_numpy(float), atol=1e-4)
    # a rerun finds every part finished and only reassembles the model
    mtime = (run / "z_qso" / "final.json").stat().st_mtime_ns
    train(spec, progress=False)
    assert (run / "z_qso" / "final.json").stat().st_mtime_ns == mtime


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_ray_train_run(tiny_emulated, tmp_path, ray_session, tiny):
    spec = SpectraTrainSpec(
        data=tiny_emulated,
        out=tmp_path,
        name="ray",
        only=["z_qso"],
        workers=2,
        **(tiny | {"epochs": 1}),
    )
    run = train(spec, progress=False)
    h = pd.read_csv(run / "history_z_qso.csv")
    assert len(h) == 1 and (h["workers"] == 2).all()
    assert list((run / "z_qso").glob("checkpoint_*"))  # Ray Train's per-epoch checkpoints
    model = SpectraModel.load(run)
    assert list(model.targets.values()) == ["QSO"]


def test_augmentation_degrades_within_the_noise_and_is_seeded():
    from jpasbatch.spectra.loop import augment

    x = torch.ones(64, 2, 1000)
    sigma = torch.full((64, 1000), 0.1)
    a = augment(x, sigma, torch.Generator().manual_seed(1))
    b = augment(x, sigma, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(x, torch.ones(64, 2, 1000))  # input untouched
    masked = (a[:, 1] == 0).any(1)
    assert 0.1 < masked.float().mean() < 0.6  # about one in three gets a masked run
    assert torch.equal(a[:, 0][a[:, 1] == 0], torch.zeros_like(a[:, 0][a[:, 1] == 0]))
    kept = a[~masked, 0]
    assert (kept - 1).std() < 0.2  # extra noise of at most sigma, tilt of a few per cent
