"""The emulated training spectra: populations, observing model, artefacts, Dask run."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jpasbatch.spectra import store
from jpasbatch.spectra.emulate import EmulateConfig, draw_targets, emulate, observe
from jpasbatch.spectra.grid import COMMON_GRID
from jpasbatch.spectra.instrument import SURVEYS, broaden, ccm_extinction


def test_targets_are_balanced_and_follow_the_populations():
    t = draw_targets(EmulateConfig(n_per_class=200, seed=1))
    assert t["CLASS"].value_counts().to_dict() == {"STAR": 200, "GALAXY": 200, "QSO": 200}
    assert (t.loc[t["CLASS"] == "STAR", "Z"] == 0).all()
    assert t.loc[t["CLASS"] == "QSO", "Z"].between(0.1, 5.0).all()
    assert set(t.loc[t["CLASS"] == "QSO", "SUBCLASS"]) <= {"QSO_LOW", "QSO_HIGH"}
    assert t["MAG_R"].between(16, 22.5).all() and t["ID"].is_unique
    assert t["SPLIT"].value_counts(normalize=True)["train"] == pytest.approx(0.7, abs=0.06)


def test_broadening_conserves_flux_and_has_the_right_width():
    x = np.zeros((2, 801))
    x[:, 400] = 1.0
    out = broaden(x, np.array([3.0, 8.0]))
    pix = np.arange(801) - 400
    assert np.allclose(out.sum(1), 1.0)
    assert np.sqrt((out * pix**2).sum(1)) == pytest.approx([3.0, 8.0], rel=1e-3)


def test_ccm_extinction_at_v():
    t = ccm_extinction(np.array([5495.0]), np.array([0.1]))
    assert t[0, 0] == pytest.approx(10 ** (-0.4 * 3.1 * 0.1), rel=0.01)


def test_observed_spectra_have_noise_masks_and_coverage(tiny_emulated):
    st = store.SpectraStore(tiny_emulated)
    flux, ivar, good = st.arrays()
    idx = st.index
    wave = COMMON_GRID.wavelength
    assert flux.shape == (90, 4618) and good.dtype == bool
    assert ((ivar > 0) == good).all() and (flux[~good] == 0).all()
    for i, s in enumerate(idx["SURVEY"]):
        lo, hi = SURVEYS[s]
        assert not good[i, (wave < lo) | (wave > hi)].any()
    # the S/N model: brighter objects have higher S/N
    rho = stats.spearmanr(idx["MAG_R"], idx["SNR"]).statistic
    assert rho < -0.5
    assert set(idx["FAMILY"]) == {"observed", "simulated"}
    snr = [np.median(flux[i, good[i]] * np.sqrt(ivar[i, good[i]])) for i in range(3)]
    assert np.allclose(snr, idx["SNR"].to_numpy()[:3], rtol=1e-4)


def test_observe_is_deterministic_for_a_seed():
    cfg = EmulateConfig(n_per_class=4, seed=2)
    t = draw_targets(cfg)
    a = observe(t, 7, cfg)
    b = observe(t, 7, cfg)
    c = observe(t, 8, cfg)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])


def test_emulate_on_dask_writes_partitions_and_summary(tmp_path, client):
    cfg = EmulateConfig(n_per_class=10, partition_size=12, seed=4)
    summary = emulate(cfg, tmp_path / "emu", client=client, progress=False)
    assert summary["rows"] == 30 and summary["partitions"] == 3
    st = store.SpectraStore(tmp_path / "emu")
    assert len(st) == 30 and st.index["ID"].is_unique
    flux, _, _ = st.arrays(np.array([29, 0]))
    assert flux.shape == (2, COMMON_GRID.n)
    # a rerun keeps the finished partitions
    stamp = (tmp_path / "emu" / store.INDEX / "part-00000.parquet").stat().st_mtime_ns
    emulate(cfg, tmp_path / "emu", client=client, progress=False)
    assert (tmp_path / "emu" / store.INDEX / "part-00000.parquet").stat().st_mtime_ns == stamp
