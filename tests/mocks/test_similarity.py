"""Similarity-search error assignment: neighbours, copied errors, bins, embedder."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from jpasbatch.catalog.schemas import BANDS
from jpasbatch.mocks.similarity import FluxEmbedder, assign_errors
from jpasbatch.physics.filters import jpas

B = len(BANDS)
I_COL = BANDS.index("iSDSS")
LAM_I = jpas()["iSDSS"].pivot_wavelength


def _catalogue(n: int, seed: int) -> np.ndarray:
    """Smooth J-spectra of a few shape families, iSDSS magnitudes 18-22."""
    rng = np.random.default_rng(seed)
    lam = np.linspace(0, 1, B)
    slope = rng.normal(0, 1, (n, 1))
    bump = rng.uniform(0, 1, (n, 1))
    shape = np.exp(slope * (lam - 0.5)) * (
        1 + rng.uniform(0, 2, (n, 1)) * np.exp(-((lam - bump) ** 2) / 0.005)
    )
    shape /= shape[:, I_COL : I_COL + 1]
    m_i = rng.uniform(18, 22, (n, 1))
    return shape * _flux_of_mag(m_i)


def _flux_of_mag(m):
    return 10 ** (-0.4 * (m + 48.6)) * 2.99792458e18 / LAM_I**2


def _mag_bin(flux_i, width=0.1):
    """0.1-mag bins of the AB magnitude (3631 Jy, as jpasbatch.physics.photometry); -999 if none."""
    with np.errstate(invalid="ignore", divide="ignore"):
        m = -2.5 * np.log10(flux_i * LAM_I**2 / 2.99792458e18 / 3631e-23)
    return np.where(np.isfinite(m), np.floor(np.nan_to_num(m) / width), -999).astype(int)


@pytest.fixture(scope="module")
def observed():
    rng = np.random.default_rng(11)
    true = _catalogue(3000, 1)
    sigma = 2e-18 * rng.uniform(0.5, 2, (1, B)) * rng.uniform(0.7, 1.5, (len(true), 1))
    flux = true + sigma * rng.standard_normal(true.shape)
    relerr = sigma / np.abs(flux)
    missing = rng.random(flux.shape) < 0.05
    missing[:, I_COL] = False
    flux[missing] = np.nan
    relerr[missing] = np.nan
    return flux, relerr


@pytest.fixture(scope="module")
def embedder(observed):
    return FluxEmbedder().fit(observed[0], epochs=4, batch_size=256, seed=3)


def _brute_force(mock, obs, emb, k=1):
    """O(N M) reference: nearest observed object in embedding space within the mock's bin."""
    e_obs, e_mock = emb.embed(obs), emb.embed(mock)
    obs_bin, mock_bin = _mag_bin(obs[:, I_COL]), _mag_bin(mock[:, I_COL])
    filled = np.unique(obs_bin[obs_bin > -999])
    out = []
    for j in range(len(mock)):
        gap = np.abs(filled - mock_bin[j])
        target = filled[np.flatnonzero(gap == gap.min())[0]]  # ties: the brighter bin
        cand = np.flatnonzero(obs_bin == target)
        d = np.sqrt(((e_obs[cand].astype(float) - e_mock[j].astype(float)) ** 2).sum(axis=1))
        out.append(cand[np.argsort(d, kind="stable")[:k]])
    return np.array(out)


def test_matches_equal_brute_force(observed, embedder):
    obs, relerr = observed
    mock = _catalogue(400, 2)
    _, _, match = assign_errors(mock, obs, relerr, embedder, 0)
    np.testing.assert_array_equal(match, _brute_force(mock, obs, embedder)[:, 0])


def test_neighbours_picks_among_k_nearest(observed, embedder):
    obs, relerr = observed
    mock = _catalogue(300, 4)
    _, _, match = assign_errors(mock, obs, relerr, embedder, 0, neighbours=3)
    ref = _brute_force(mock, obs, embedder, k=3)
    assert all(m in r for m, r in zip(match, ref, strict=True))
    assert np.mean(match != ref[:, 0]) > 0.4  # not always the nearest


def test_copied_errors_and_missing_pattern(observed, embedder):
    obs, relerr = observed
    mock = _catalogue(500, 5)
    flux, rel, match = assign_errors(mock, obs, relerr, embedder, 1)
    np.testing.assert_array_equal(np.isnan(flux), np.isnan(obs[match]))
    np.testing.assert_array_equal(np.isnan(rel), np.isnan(relerr[match]))
    ok = ~np.isnan(flux)
    # the absolute error of the match is what is copied
    sigma = relerr[match] * np.abs(obs[match])
    np.testing.assert_allclose((rel * np.abs(flux))[ok], sigma[ok], rtol=1e-12)
    # and the fluxes are perturbed by it: residuals / sigma ~ N(0, 1)
    pull = ((flux - mock) / sigma)[ok]
    assert abs(pull.mean()) < 0.02 and abs(pull.std() - 1) < 0.02


def test_magnitude_bins_respected_and_out_of_range_mocks(observed, embedder):
    obs, relerr = observed
    mock = _catalogue(500, 6)
    _, _, match = assign_errors(mock, obs, relerr, embedder, 2)
    np.testing.assert_array_equal(_mag_bin(mock[:, I_COL]), _mag_bin(obs[match, I_COL]))
    # far brighter / fainter than the catalogue: the brightest / faintest observed bin
    extreme = mock[:2] / mock[:2, I_COL : I_COL + 1] * _flux_of_mag(np.array([[12.0], [35.0]]))
    with pytest.warns(UserWarning, match="2 of 2 mocks"):
        _, _, m2 = assign_errors(extreme, obs, relerr, embedder, 2)
    obs_bins = _mag_bin(obs[:, I_COL])
    obs_bins = obs_bins[obs_bins > -999]
    assert _mag_bin(obs[m2[0], I_COL]) == obs_bins.min()
    assert _mag_bin(obs[m2[1], I_COL]) == obs_bins.max()
    with pytest.raises(ValueError, match="positive iSDSS"):
        assign_errors(-mock[:3], obs, relerr, embedder, 2)


def test_embedder_learns_and_is_fast(observed, embedder):
    flux, model = observed[0], embedder
    before = FluxEmbedder().fit(flux, epochs=0, seed=3).loss(flux)  # untrained weights
    assert model.history_[-1] < 0.7 * model.history_[0]
    assert model.loss(flux) < 0.5 * before
    big = np.tile(flux, (4, 1))[:10_000]
    t0 = time.perf_counter()
    e = model.embed(big)
    assert time.perf_counter() - t0 < 2.0
    assert e.shape == (10_000, 8) and np.all(np.isfinite(e))


def test_deterministic_for_a_seed(observed, embedder, tmp_path):
    obs, relerr = observed
    a = FluxEmbedder().fit(obs[:500], epochs=2, seed=5)
    b = FluxEmbedder().fit(obs[:500], epochs=2, seed=5)
    c = FluxEmbedder().fit(obs[:500], epochs=2, seed=6)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not np.array_equal(a.embed(obs[:50]), c.embed(obs[:50]))
    mock = _catalogue(200, 7)
    r1 = assign_errors(mock, obs, relerr, embedder, np.random.default_rng(9))
    r2 = assign_errors(mock, obs, relerr, embedder, np.random.default_rng(9))
    for x, y in zip(r1, r2, strict=True):
        np.testing.assert_array_equal(x, y)
    card = embedder.save(tmp_path / "emb")
    loaded = FluxEmbedder.load(card)
    np.testing.assert_array_equal(loaded.embed(obs[:100]), embedder.embed(obs[:100]))
