"""The batched template fit against independent calculations."""

from __future__ import annotations

import numpy as np
import pytest

from jpasbatch.physics.igm import igm_transmission
from jpasbatch.physics.templates import redrock_basis
from jpasbatch.templatefit import (
    CLASSES,
    FLAG_BITS,
    TemplateGrids,
    fit_one_naive,
    fit_photometry,
)
from jpasbatch.templatefit import grids as G
from jpasbatch.templatefit.kernel import luminosity_penalty


def _observe(flux: np.ndarray, snr: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    flux = np.atleast_2d(flux) / np.abs(flux).mean() * 1e-17
    err = np.abs(flux).mean(axis=1, keepdims=True) / snr * np.ones_like(flux)
    return flux + err * rng.normal(size=flux.shape), err


def _spectrum_photometry(kind: str, coeff: np.ndarray, z: float, igm_from: float) -> np.ndarray:
    """Band fluxes of a redrock spectrum at an off-grid z, integrated here from scratch."""
    wave, basis, _ = redrock_basis(kind)
    spec = coeff @ basis
    if igm_from is not None:
        trans = igm_transmission(wave * (1 + z), z)
        spec = spec * np.where(wave >= igm_from, trans, 1.0)
    # the J-PAS bands outside the template's rest range: keep only covered bands
    return G._photometry(G.BANDS)(wave, spec[None], z).flux[0]


@pytest.mark.parametrize(
    ("kind", "z", "cls", "igm_from"),
    [
        ("galaxy-2016", 0.537, "GALAXY", 0.0),
        ("QSO-LOZ", 0.861, "QSO_LOW", 0.0),
        ("QSO-HIZ", 2.733, "QSO_HIGH", G.HIZ_IGM_FROM),
    ],
)
def test_template_at_known_z_is_recovered(coarse, kind, z, cls, igm_from):
    _, _, extra = redrock_basis(kind)
    coeff = extra["ARCHETYPE_COEFF"][17] if "ARCHETYPE_COEFF" in extra else np.r_[1, 0.1, 0, 0]
    flux = _spectrum_photometry(kind, coeff, z, igm_from)
    assert np.isfinite(flux).sum() >= 50
    obs, err = _observe(flux, 30, seed=3)
    res = fit_photometry(obs, err, coarse)
    step = np.diff(np.log1p(coarse.z["QSO" if "QSO" in cls else "GALAXY"]))[0]
    assert CLASSES[res.class_code[0]] == cls
    assert abs(np.log1p(res.z[0]) - np.log1p(z)) <= step
    assert res.n_bands[0] == np.isfinite(flux).sum()


def test_star_archetype_is_a_star(coarse):
    wave, basis, extra = redrock_basis("STAR-K")
    flux = G._photometry(G.BANDS)(wave, (extra["ARCHETYPE_COEFF"][5] @ basis)[None]).flux[0]
    obs, err = _observe(flux, 50, seed=1)
    res = fit_photometry(obs, err, coarse)
    assert CLASSES[res.class_code[0]] == "STAR" and res.z[0] == 0.0


def _lstsq_chi2(model: np.ndarray, flux: np.ndarray, err: np.ndarray, sys: float):
    ok = np.isfinite(flux)
    sigma = np.sqrt(err[ok] ** 2 + (sys * flux[ok]) ** 2)
    x = model[:, ok].T / sigma[:, None]
    y = flux[ok] / sigma
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    return float(np.sum((x @ coef - y) ** 2)), coef


def test_batched_solve_matches_lstsq(coarse):
    rng = np.random.default_rng(7)
    gal = coarse.model["GALAXY"]
    flux = np.einsum("nk,kb->nb", rng.normal(1, 0.3, (4, 5)), gal[30]) + 0.1 * gal[30, 0]
    obs, err = _observe(flux, 20, seed=2)
    obs[1, 7] = np.nan  # one missing band too
    res = fit_photometry(obs, err, coarse, systematic=0.02)
    prior = luminosity_penalty(obs, coarse)  # chi2_z is chi2 plus the luminosity prior
    for c in ("GALAXY", "QSO"):
        for n in range(4):
            for iz in (0, 11, 57, coarse.z[c].size - 1):
                chi2, coef = _lstsq_chi2(coarse.model[c][iz], obs[n], err[n], 0.02)
                got = res.chi2_z[c][n, iz] - prior[c][n, iz]
                assert got == np.inf or got == pytest.approx(chi2, rel=1e-6, abs=1e-6)
            # coefficients at the best grid point
            ib = int(np.argmin(res.chi2_z[c][n]))
            _, coef = _lstsq_chi2(coarse.model[c][ib], obs[n], err[n], 0.02)
            np.testing.assert_allclose(res.coeff[c][n], coef, rtol=1e-6)
    star = [min(_lstsq_chi2(t[None], obs[n], err[n], 0.02)[0] for t in coarse.model["STAR"][0])
            for n in range(4)]  # fmt: skip
    # the star amplitude is non-negative; these objects fit all stars with a positive one
    np.testing.assert_allclose(res.chi2["STAR"], star, rtol=1e-6)


def test_naive_fit_agrees(coarse):
    flux = coarse.model["QSO"][80, 0] + 0.2 * coarse.model["QSO"][80, 1]
    obs, err = _observe(flux, 25, seed=4)
    fast = fit_photometry(obs, err, coarse)
    slow = fit_one_naive(obs[0], err[0], coarse)
    for c in ("GALAXY", "QSO"):
        np.testing.assert_allclose(fast.chi2_z[c], slow.chi2_z[c], rtol=1e-6)
    assert fast.class_code[0] == slow.class_code[0]
    assert fast.z[0] == pytest.approx(slow.z[0], abs=1e-9)


def test_missing_band_only_drops_its_term(coarse):
    rng = np.random.default_rng(5)
    flux = coarse.model["GALAXY"][40].T @ rng.normal(1, 0.2, 5)
    obs, err = _observe(flux, 20, seed=5)
    j = 23
    with_nan = obs.copy()
    with_nan[0, j] = np.nan
    keep = np.arange(60) != j
    # a grid without band j, built from the same arrays: an independent problem
    sub = TemplateGrids(
        tuple(np.array(coarse.bands)[keep]),
        coarse.z,
        {c: m[..., keep] for c, m in coarse.model.items()},
        coarse.star_subtype,
        "sub",
    )
    a = fit_photometry(with_nan, err, coarse)
    b = fit_photometry(obs[:, keep], err[:, keep], sub)
    for c in ("GALAXY", "QSO"):
        np.testing.assert_allclose(a.chi2_z[c], b.chi2_z[c], rtol=1e-8)
    np.testing.assert_allclose(a.chi2["STAR"], b.chi2["STAR"], rtol=1e-8)
    assert a.n_bands[0] == 59 == b.n_bands[0]
    # a NaN or non-positive error is the same as a NaN flux
    bad_err = err.copy()
    bad_err[0, j] = 0.0
    c = fit_photometry(obs, bad_err, coarse)
    np.testing.assert_allclose(c.chi2_z["QSO"], a.chi2_z["QSO"], rtol=1e-10)
    # and dropping it did change something (the test can fail)
    full = fit_photometry(obs, err, coarse)
    assert not np.allclose(full.chi2_z["GALAXY"], a.chi2_z["GALAXY"], rtol=1e-8)


def test_pz_integrates_to_one(coarse):
    rng = np.random.default_rng(6)
    flux = np.stack([coarse.model["QSO"][i, 0] for i in (10, 90, 140)])
    flux = flux * rng.uniform(0.5, 2, (3, 1))
    obs, err = _observe(flux, 15, seed=6)
    res = fit_photometry(obs, err, coarse)
    for c in ("GALAXY", "QSO"):
        np.testing.assert_allclose(np.trapezoid(res.pz[c], res.z_grid[c], axis=1), 1, rtol=1e-5)
    z, pz = res.pz_chosen()
    np.testing.assert_allclose(np.trapezoid(pz, z, axis=1), 1, rtol=1e-5)


def test_few_bands_flagged(coarse):
    flux = coarse.model["GALAXY"][20, 0].copy()
    obs, err = _observe(flux, 20, seed=8)
    obs[0, 8:] = np.nan
    res = fit_photometry(obs, err, coarse)
    assert res.n_bands[0] == 8 and res.flags[0] & FLAG_BITS["FEW_BANDS"]
    cols = res.to_columns()
    assert set(cols) >= {"CHI2_STAR", "CLASS_TEMPLATE", "Z_TEMPLATE", "Z_TEMPLATE_ERR", "FLAGS"}


def test_luminosity_prior_by_hand(coarse):
    from astropy.cosmology import Planck18

    from jpasbatch.physics.photometry import SyntheticPhotometry

    # an object of r = 19 (AB), flat in f_nu
    sp = SyntheticPhotometry()
    pivot = np.array([b.pivot_wavelength for b in sp.system])
    flux = (3631e-23 * 10 ** (-0.4 * 19.0) * 2.99792458e18 / pivot**2)[None]
    got = luminosity_penalty(flux, coarse)
    for c, limit, sign in (("GALAXY", -24.0, -1), ("QSO", -20.5, 1)):
        z = np.maximum(coarse.z[c], 1e-4)
        m_abs = 19.0 - Planck18.distmod(z).value + 2.5 * np.log10(1 + z)
        excess = np.clip(sign * (m_abs - limit), 0, None)
        np.testing.assert_allclose(got[c][0], (excess / 0.5) ** 2, rtol=1e-6, atol=1e-9)
    # a galaxy of r = 19 at z = 0.1 is allowed, at z = 1.5 it is not; a QSO at z = 0.01 is not
    zg = coarse.z["GALAXY"]
    assert got["GALAXY"][0, np.argmin(abs(zg - 0.1))] == 0
    assert got["GALAXY"][0, np.argmin(abs(zg - 1.5))] > 4
    assert got["QSO"][0, np.argmin(abs(coarse.z["QSO"] - 0.01))] > 100


def test_class_probabilities_follow_the_bic(coarse):
    rng = np.random.default_rng(4)
    gal = coarse.model["GALAXY"]
    flux = np.einsum("nk,kb->nb", rng.normal(1, 0.2, (6, 5)), gal[20]) + 0.2 * gal[20, 0]
    obs, err = _observe(flux, 15, seed=5)
    res = fit_photometry(obs, err, coarse)
    p = res.class_probabilities()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # by hand for the star and galaxy columns: exp(-BIC/2) ratios
    logn = np.log(res.n_bands)
    bic_s = res.chi2["STAR"] + 2 * logn
    bic_g = res.chi2["GALAXY"] + 6 * logn
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(p[:, 0] / p[:, 1], np.exp(-(bic_s - bic_g) / 2), rtol=1e-6)
    assert (p.argmax(axis=1) == res.class_code).all()


def test_galactic_extinction_is_undone(coarse):
    from jpasbatch.physics.filters import get_system

    rng = np.random.default_rng(8)
    gal = coarse.model["GALAXY"]
    flux = np.einsum("nk,kb->nb", rng.normal(1, 0.2, (3, 5)), gal[40]) + 0.2 * gal[40, 0]
    obs, err = _observe(flux, 25, seed=9)
    kx = np.array([get_system("jpas")[b].extinction_coeff for b in coarse.bands])
    dim = 10 ** (-0.4 * 0.3 * kx)  # E(B-V) = 0.3 dims the blue bands most
    plain = fit_photometry(obs, err, coarse)
    reddened = fit_photometry(obs * dim, err * dim, coarse, ebv=0.3)
    np.testing.assert_allclose(reddened.chi2["GALAXY"], plain.chi2["GALAXY"], rtol=1e-8)
    np.testing.assert_array_equal(reddened.class_code, plain.class_code)
    ignored = fit_photometry(obs * dim, err * dim, coarse)
    assert not np.allclose(ignored.chi2["GALAXY"], plain.chi2["GALAXY"], rtol=1e-3)


def test_regrid_keeps_a_peak_narrower_than_the_new_grid():
    from jpasbatch.templatefit.kernel import regrid_pdf

    x = np.linspace(0, 1.5, 1501)  # a fine grid (step 0.001) onto a coarse one (0.0075)
    new_x = np.linspace(0, 6, 801)
    peak = 0.30375  # half-way between two coarse nodes
    narrow = np.exp(-0.5 * ((x - peak) / 0.0008) ** 2)
    broad = np.exp(-0.5 * ((x - 0.7) / 0.05) ** 2)
    p = np.stack([narrow, broad, np.zeros_like(x)])
    p[:2] /= np.trapezoid(p[:2], x, axis=1)[:, None]
    out = regrid_pdf(p, x, new_x)
    # point sampling loses the narrow peak entirely (the old 0 / 0)
    assert np.trapezoid(np.interp(new_x, x, p[0]), new_x) < 1e-3
    np.testing.assert_allclose(np.trapezoid(out[:2], new_x, axis=1), 1, rtol=1e-9)
    assert np.trapezoid(out[0] * new_x, new_x) == pytest.approx(peak, abs=0.004)
    # a peak the coarse grid resolves: as sampled, to its curvature over a cell
    ref = np.interp(new_x, x, p[1])
    np.testing.assert_allclose(out[1], ref / np.trapezoid(ref, new_x), atol=2e-2 * ref.max())
    assert (out[2] == 0).all()
