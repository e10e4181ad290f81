"""Depth noise model: variance, S/N at the depth, missing bands, zero points."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from jpasbatch.physics.filters import jpas
from jpasbatch.physics.noise import depth_sigma, observe, pivot_wavelengths

B = 60
DEPTH = np.linspace(21.5, 23.0, B)


def test_pivots_are_the_band_pivots():
    lam = pivot_wavelengths()
    assert lam.shape == (B,)
    assert lam[jpas().names.index("rSDSS")] == pytest.approx(jpas()["rSDSS"].pivot_wavelength)
    assert np.all((lam > 3000) & (lam < 10500))


def test_depth_sigma_against_astropy():
    lam = pivot_wavelengths() * u.AA
    f5 = (DEPTH * u.ABmag).to(u.erg / u.s / u.cm**2 / u.AA, u.spectral_density(lam)).value
    np.testing.assert_allclose(depth_sigma(DEPTH), f5 / 5, rtol=1e-10)
    np.testing.assert_allclose(depth_sigma(DEPTH, aperture_corr=1.3), 1.3 * f5 / 5, rtol=1e-10)


def _analytic_variance(flux, sigma5, gain):
    # independent restatement of the documented model: at the depth the total is sigma5**2
    bg = sigma5**2 - sigma5 * (5 * sigma5) / gain
    return bg + sigma5 * np.clip(flux, 0, None) / gain


def test_empirical_variance_matches_background_plus_shot():
    n, gain = 40_000, 50.0
    s5 = depth_sigma(DEPTH)
    levels = np.geomspace(0.01, 3000, B) * s5  # from far below the depth to very bright
    flux = np.broadcast_to(levels, (n, B))
    obs, _, _ = observe(flux, DEPTH, 1, gain_factor=gain)
    var = obs.var(axis=0)
    expected = _analytic_variance(levels, s5, gain)
    np.testing.assert_allclose(var, expected, rtol=0.04)
    assert np.all(np.abs(obs.mean(axis=0) - levels) < 4.5 * np.sqrt(expected / n))
    # the shot term matters for bright sources only
    background = s5**2 * (1 - 5 / gain)
    assert np.all(var[-5:] > 10 * background[-5:])
    np.testing.assert_allclose(var[:5], background[:5], rtol=0.04)


@pytest.mark.parametrize("gain", [20.0, 150.0, np.inf])
def test_snr_at_depth_is_five(gain):
    n = 40_000
    f5 = 5 * depth_sigma(DEPTH)
    obs, _, _ = observe(np.broadcast_to(f5, (n, B)), DEPTH, 7, gain_factor=gain)
    snr = f5 / obs.std(axis=0)
    assert np.mean(snr) == pytest.approx(5.0, abs=0.02)
    assert np.all(np.abs(snr - 5) < 0.15)


def test_reported_relerr_and_detection():
    n, gain = 2000, 80.0
    s5 = depth_sigma(DEPTH)
    flux = np.broadcast_to(np.geomspace(0.1, 100, B) * s5, (n, B))
    obs, relerr, detected = observe(flux, DEPTH, 3, gain_factor=gain)
    # error as a pipeline reports it: the model at the measured flux, over |measured flux|
    err = np.sqrt(_analytic_variance(obs, s5, gain))
    np.testing.assert_allclose(relerr, err / np.abs(obs), rtol=1e-12)
    np.testing.assert_array_equal(detected, (obs > 0) & (obs / err >= 1))
    assert np.any(obs < 0) and np.all(np.isfinite(relerr))  # non-detections kept
    assert relerr[:, 0].max() > 10  # huge relative errors for faint sources


def test_missing_bands_are_nan_and_do_not_change_other_cells():
    rng = np.random.default_rng(0)
    flux = 10 ** rng.uniform(-17.5, -16, (500, B))
    missing = rng.random((500, B)) < 0.1
    obs, relerr, det = observe(flux, DEPTH, 5, missing=missing)
    obs0, relerr0, _ = observe(flux, DEPTH, 5)
    assert np.all(np.isnan(obs[missing])) and np.all(np.isnan(relerr[missing]))
    assert not det[missing].any()
    np.testing.assert_array_equal(obs[~missing], obs0[~missing])
    np.testing.assert_array_equal(relerr[~missing], relerr0[~missing])
    assert np.all(np.isfinite(obs0))


def test_zero_point_offsets_are_multiplicative():
    rng = np.random.default_rng(1)
    flux = 10 ** rng.uniform(-17, -15.5, (300, B))
    zp = rng.normal(0, 0.05, (300, B))
    # without shot noise the noise does not depend on the flux: same draws, scaled source
    obs_zp, _, _ = observe(flux, DEPTH, 9, gain_factor=np.inf, zp_offsets_mag=zp)
    obs, _, _ = observe(flux, DEPTH, 9, gain_factor=np.inf)
    np.testing.assert_allclose(obs_zp - obs, flux * (10 ** (-0.4 * zp) - 1), rtol=1e-9, atol=0)
    # with shot noise the mean is still the scaled flux; per-band (B,) offsets broadcast
    zp_band = np.linspace(-0.1, 0.1, B)
    bright = np.broadcast_to(1e-15, (20_000, B))
    mean = observe(bright, DEPTH, 2, zp_offsets_mag=zp_band)[0].mean(axis=0)
    np.testing.assert_allclose(mean, 1e-15 * 10 ** (-0.4 * zp_band), rtol=2e-3)


def test_deterministic_for_a_seed():
    flux = np.full((100, B), 1e-17)
    a = observe(flux, DEPTH, np.random.default_rng(42))
    b = observe(flux, DEPTH, np.random.default_rng(42))
    c = observe(flux, DEPTH, np.random.default_rng(43))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_per_object_depths_and_bad_gain():
    flux = np.full((2, B), 1e-17)
    depth = np.stack([DEPTH, DEPTH + 5])  # the second object sits in a much deeper image
    _, relerr, _ = observe(flux, depth, 0)
    assert np.nanmedian(relerr[1]) < np.nanmedian(relerr[0]) / 20
    with pytest.raises(ValueError, match="gain_factor"):
        observe(flux, DEPTH, 0, gain_factor=4.0)
