"""Template grids: cache behaviour, redshift steps and the IGM of the QSO models."""

from __future__ import annotations

import numpy as np

from jpasbatch.physics.igm import LYMAN_ALPHA
from jpasbatch.templatefit import grids as G
from jpasbatch.templatefit import load_grids


def test_z_grid_constant_log_steps():
    z = G.z_grid(1.7, 0.002)
    assert z[0] == 0.0 and z[-1] <= 1.7 < z[-1] * 1.003 + 0.003
    np.testing.assert_allclose(np.diff(np.log1p(z)), 0.002, rtol=1e-9)


def test_shapes(coarse):
    assert coarse.model["STAR"].shape[:1] == (1,) and coarse.z["STAR"].tolist() == [0.0]
    for c in ("GALAXY", "QSO"):
        assert coarse.model[c].shape == (coarse.z[c].size, 5 if c == "GALAXY" else 4, 60)
        assert np.isfinite(coarse.model[c]).all()
    assert coarse.star_subtype.size == coarse.model["STAR"].shape[1]


def test_second_load_reads_the_file(coarse, grids_dir, monkeypatch):
    assert coarse.path is not None and coarse.path.is_file()

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt instead of reading the cache")

    monkeypatch.setattr(G, "build_grids", fail)
    again = load_grids(coarse=True, cache_dir=grids_dir)
    assert again.path == coarse.path and again.key == coarse.key
    for c in coarse.model:
        np.testing.assert_array_equal(again.model[c], coarse.model[c])
        np.testing.assert_array_equal(again.z[c], coarse.z[c])


def test_changed_grid_builds_a_new_file(grids_dir, coarse, monkeypatch):
    monkeypatch.setenv("JPASBATCH_CACHE", str(grids_dir / "env"))
    bands = ("J0400", "J0500", "J0600", "J0700")
    other = load_grids(bands, galaxy_z=(0.5, 0.05), qso_z=(3.0, 0.05), n_star_max=5)
    assert other.key != coarse.key
    assert other.path.parent == grids_dir / "env" / "templatefit" and other.path.is_file()
    assert other.model["GALAXY"].shape == (G.z_grid(0.5, 0.05).size, 5, 4)
    # same bands through the big grid: the columns of those bands at the same z
    iz = np.flatnonzero(np.isclose(coarse.z["QSO"][:, None], other.z["QSO"][None]).any(1))
    assert iz.size == 0 or np.allclose(
        coarse.model["QSO"][iz][..., [list(coarse.bands).index(b) for b in bands]],
        other.model["QSO"][np.isin(other.z["QSO"], coarse.z["QSO"][iz])],
    )


def test_igm_lowers_qso_flux_blueward_of_lyman_alpha():
    z = np.array([3.0])
    sp = G._photometry(G.BANDS)
    wave, basis, _ = G._binned("QSO-HIZ", 4)
    with_igm = G._band_fluxes(sp, wave, basis[:1], z, True, G.HIZ_IGM_FROM)[0, 0]
    without = G._band_fluxes(sp, wave, basis[:1], z, False)[0, 0]
    # bands wholly between Ly-beta and Ly-alpha, where HIZ had its forest removed
    blue = (sp.hi < LYMAN_ALPHA * (1 + z[0])) & (sp.lo > G.HIZ_IGM_FROM * (1 + z[0]))
    red = sp.lo > LYMAN_ALPHA * (1 + z[0])
    bluer = sp.hi < G.HIZ_IGM_FROM * (1 + z[0])  # template keeps its own mean absorption
    assert blue.sum() >= 5 and red.sum() >= 20 and bluer.sum() >= 3
    assert np.all(with_igm[blue] < 0.95 * without[blue])
    np.testing.assert_allclose(with_igm[red], without[red], rtol=1e-12)
    np.testing.assert_allclose(with_igm[bluer], without[bluer], rtol=1e-12)


def test_grid_qso_model_has_igm(coarse):
    # the cached grid holds the absorbed model: compare with a fresh no-IGM integration
    iz = int(np.argmin(np.abs(coarse.z["QSO"] - 3.0)))
    z = coarse.z["QSO"][iz : iz + 1]
    sp = G._photometry(G.BANDS)
    wave, basis, _ = G._binned("QSO-HIZ", 4)
    without = G._band_fluxes(sp, wave, basis, z, False)[0]
    blue = (sp.hi < LYMAN_ALPHA * (1 + z[0])) & (sp.lo > G.HIZ_IGM_FROM * (1 + z[0]))
    assert blue.sum() >= 5
    assert np.all(coarse.model["QSO"][iz, 0, blue] < 0.95 * without[0, blue])
