"""Synthetic photometry checked against speclite and against direct integration."""

from importlib import resources

import numpy as np
import pytest
import torch
from astropy.io import fits
from scipy.integrate import trapezoid

from jpasbatch.physics.filters import extra_bands, jpas
from jpasbatch.physics.photometry import AB_FNU, C_ANGSTROM, SyntheticPhotometry, flux_to_ab

RNG = np.random.default_rng(20261121)


@pytest.fixture(scope="module")
def sp():
    return SyntheticPhotometry()


@pytest.fixture(scope="module")
def speclite_jpas():
    return jpas().to_speclite()


def speclite_mags(seq, wavelength, flux):
    table = seq.get_ab_magnitudes(np.atleast_2d(flux), wavelength)
    return np.array([np.asarray(table[name]) for name in seq.names]).T


def smooth_spectra(wavelength, n, seed=0):
    """Positive random spectra: a sum of 8 low-order cosines, ~1e-17 erg/s/cm2/A."""
    rng = np.random.default_rng(seed)
    span = wavelength[-1] - wavelength[0]
    basis = np.cos(np.pi * np.arange(8)[:, None] * (wavelength - wavelength[0]) / span)
    return (3 + 0.3 * rng.normal(size=(n, 8)) @ basis).clip(0.05) * 1e-17


def pickles(name):
    path = resources.files("jpasbatch") / "data" / "templates" / "pickles" / f"{name}.fits"
    with fits.open(str(path)) as hdul:
        return np.asarray(hdul[1].data["WAVELENGTH"], float), np.asarray(
            hdul[1].data["FLUX"], float
        )


def redrock(name, row=0):
    path = (
        resources.files("jpasbatch") / "data" / "templates" / "redrock" / f"rrtemplate-{name}.fits"
    )
    with fits.open(str(path)) as hdul:
        head, basis = hdul[0].header, hdul[0].data.astype(float)
        lam = head["CRVAL1"] + head["CDELT1"] * np.arange(basis.shape[1])
        if head.get("LOGLAM", 0):
            lam = 10**lam
        coeff = hdul["ARCHETYPE_COEFF"].data[row] if "ARCHETYPE_COEFF" in hdul else None
    flux = coeff @ basis if coeff is not None else basis[0]
    return lam, flux


def test_random_smooth_spectra_agree_with_speclite(sp, speclite_jpas):
    # 0.5 A sampling: finer than the 1 A curves, where speclite's own quadrature is exact
    wave = np.arange(3000.0, 11200.0, 0.5)
    flux = smooth_spectra(wave, 40)
    ours = sp(wave, flux).mag
    ref = speclite_mags(speclite_jpas, wave, flux)
    assert ours.shape == (40, 60)
    assert np.max(np.abs(ours - ref)) < 1e-3


@pytest.mark.parametrize(
    ("template", "redshifts"),
    [
        ("pickles:g2v", [0.0]),
        ("pickles:m5v", [0.0]),
        ("redrock:galaxy-2016", [0.1, 0.3, 0.6]),
        ("redrock:STAR-K-v0.1", [0.0]),
        ("redrock:QSO-HIZ-v1.1", [2.3, 3.0, 3.5]),
        ("redrock:QSO-LOZ-v1.1", [0.5, 1.0]),
    ],
)
def test_templates_at_redshifts_agree_with_speclite(sp, speclite_jpas, template, redshifts):
    kind, name = template.split(":")
    lam, flux = pickles(name) if kind == "pickles" else redrock(name)
    flux = np.abs(flux) / np.abs(flux).max() * 1e-16 + 1e-20
    res = sp(lam, np.tile(flux, (len(redshifts), 1)), z=np.array(redshifts))
    for i, z in enumerate(redshifts):
        obs_lam, obs_flux = lam * (1 + z), flux / (1 + z)
        covered = res.covered[i]
        assert covered.sum() >= 50
        # speclite refuses bands the spectrum does not cover: ours must flag exactly those
        for j, band in enumerate(jpas()):
            lo, hi = band.wavelength[[0, -1]]
            assert covered[j] == (obs_lam[0] <= lo and obs_lam[-1] >= hi)
        seq = jpas().select(np.array(jpas().names)[covered]).to_speclite()
        ref = speclite_mags(seq, obs_lam, obs_flux)[0]
        assert np.max(np.abs(res.mag[i, covered] - ref)) < 1e-3
        assert np.all(np.isnan(res.mag[i, ~covered]))


def test_matches_dense_direct_integration_on_a_coarse_grid(sp):
    # an analytic spectrum sampled at 3 A: compare with a 0.02 A trapezoid of the
    # same linear interpolant through each curve (independent of our cell scheme)
    wave = np.arange(3000.0, 11200.0, 3.0)
    flux = smooth_spectra(wave, 1, seed=3)[0]
    ours = sp(wave, flux[None]).mag[0]
    for j, band in enumerate(jpas()):
        lam = np.arange(band.wavelength[0], band.wavelength[-1], 0.02)
        r = np.interp(lam, band.wavelength, band.response)
        f = np.interp(lam, wave, flux)
        ref = -2.5 * np.log10(
            trapezoid(f * r * lam, lam) / trapezoid(AB_FNU * C_ANGSTROM / lam**2 * r * lam, lam)
        )
        assert ours[j] == pytest.approx(ref, abs=2e-5), band.name


def test_flat_fnu_gives_the_same_ab_magnitude_everywhere(sp):
    wave = np.arange(2500.0, 60000.0, 0.5)
    flux = AB_FNU * 10 ** (-0.4 * 21.3) * C_ANGSTROM / wave**2
    all_bands = SyntheticPhotometry(jpas() + extra_bands())
    res = all_bands(wave, flux[None])
    assert res.covered.all()
    assert np.allclose(res.mag, 21.3, atol=1e-5)
    # and the band-averaged f_lambda converts back at the pivot wavelength
    pivots = np.array([b.pivot_wavelength for b in all_bands.system])
    assert np.allclose(flux_to_ab(res.flux[0], pivots), 21.3, atol=1e-5)


def test_redshift_dims_a_flat_flambda_spectrum_by_one_plus_z(sp):
    # f_lambda = const in the rest frame is f/(1+z) at every observed wavelength
    wave = np.arange(1000.0, 12000.0, 2.0)
    z = np.array([0.0, 0.1, 0.25])
    res = sp(wave, np.full((3, wave.size), 1e-17), z=z)
    assert np.allclose(res.flux, 1e-17 / (1 + z[:, None]), rtol=1e-10)


def test_per_object_redshift_equals_fixed_redshift(sp):
    wave = np.arange(2000.0, 12000.0, 1.7)
    flux = smooth_spectra(wave, 6, seed=5)
    per_object = sp(wave, flux, z=np.full(6, 0.3)).mag
    fixed = sp(wave, flux, z=0.3).mag
    assert np.allclose(per_object, fixed, atol=1e-10, equal_nan=True)
    # and per-object z picks each object's own redshift
    zs = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.25])
    mixed = sp(wave, flux, z=zs).mag
    for i, z in enumerate(zs):
        assert np.allclose(mixed[i], sp(wave, flux[i : i + 1], z=z).mag[0], atol=1e-10)


def test_partial_coverage_gives_nan_and_flag(sp):
    wave = np.arange(4000.0, 8000.0, 1.0)
    res = sp(wave, smooth_spectra(wave, 2))
    for j, band in enumerate(jpas()):
        inside = band.wavelength[0] >= 4000 and band.wavelength[-1] <= 7999
        assert res.covered[0, j] == inside, band.name
        assert np.isnan(res.mag[0, j]) != inside
        assert np.isnan(res.flux[0, j]) != inside
    assert not res.covered[:, jpas().names.index("iSDSS")].any()
    assert not res.covered[:, jpas().names.index("uJPAS")].any()
    assert res.covered[:, jpas().names.index("J0600")].all()


def test_non_finite_flux_is_reported_with_its_pixel(sp):
    wave = np.arange(3000.0, 11200.0, 2.0)
    flux = smooth_spectra(wave, 3)
    flux[1, 1500] = np.nan  # 6000 A: inside several bands
    with pytest.raises(ValueError, match="spectrum 1, pixel 1500"):
        sp(wave, flux)
    with pytest.raises(ValueError, match="spectrum 1, pixel 1500"):
        sp(wave, flux, z=np.zeros(3))
    # a NaN where no band looks does not matter, and leaves the other pixels' sums alone
    clean = smooth_spectra(wave, 3)
    flux = clean.copy()
    flux[0, 0] = np.nan
    flux[2, -1] = np.inf
    for z in (None, np.zeros(3)):
        res = sp(wave, flux, z=z)
        assert np.isfinite(res.mag).all()
        assert np.allclose(res.mag, sp(wave, clean).mag, atol=1e-12)


def test_bad_grids_are_rejected(sp):
    with pytest.raises(ValueError, match="strictly increasing at index 2"):
        sp(np.array([1.0, 2.0, 2.0, 3.0]), np.ones((1, 4)))
    with pytest.raises(ValueError, match="pixels"):
        sp(np.arange(3000.0, 11000.0), np.ones((1, 10)))
    with pytest.raises(ValueError, match="z has shape"):
        sp(np.arange(3000.0, 11000.0), np.ones((2, 8000)), z=np.zeros(3))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_path_matches_numpy(sp, dtype):
    wave = np.arange(3000.0, 11200.0, 1.5)
    flux = smooth_spectra(wave, 16, seed=7)
    ref = sp(wave, flux)
    flam, mag, cov = sp.torch_fluxes(wave, torch.as_tensor(flux, dtype=dtype))
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert torch.equal(cov, torch.as_tensor(ref.covered))
    assert np.allclose(mag.numpy(), ref.mag, atol=tol)
    assert np.allclose(flam.double().numpy(), ref.flux, rtol=10 * tol)
