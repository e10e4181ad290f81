"""Dust laws, absorbers and randomisation draws against independent references."""

import astropy.units as u
import numpy as np
import pytest
from scipy import integrate, stats

from jpasbatch.sim import effects

dust_extinction = pytest.importorskip("dust_extinction")


def test_ccm89_matches_dust_extinction():
    from dust_extinction.parameter_averages import CCM89

    wave = np.geomspace(1250, 33000, 200)
    for r_v in (2.5, 3.1, 5.0):
        ref = CCM89(Rv=r_v)(wave * u.AA) * r_v  # A_lambda / A_V -> / E(B-V)
        np.testing.assert_allclose(effects.ccm89(wave, r_v), ref, rtol=1e-6)


def test_smc_pei92_close_to_gordon03_smc_bar():
    # two independent fits of SMC extinction: Pei's analytic form and Gordon et al.'s
    # measured bar curve agree to ~10% from the UV to the near IR
    from dust_extinction.averages import G03_SMCBar

    wave = np.geomspace(1300, 9000, 50)
    ref = G03_SMCBar()(wave * u.AA) * G03_SMCBar.Rv
    np.testing.assert_allclose(effects.smc_pei92(wave), ref, rtol=0.12)
    # steep in the UV, no 2175 A bump: monotonic
    assert np.all(np.diff(effects.smc_pei92(np.geomspace(1000, 10000, 300))) < 0)


def test_calzetti00_paper_values():
    # Calzetti et al. (2000) eq. 4: k(V) = R_V; its two pieces meet at 0.63 micron
    # to within 1% (the published fits); k(1500 A) = 10.33
    k = effects.calzetti00(np.array([5500.0, 6299.999, 6300.001, 1500.0]))
    assert k[0] == pytest.approx(4.05, abs=0.01)
    assert k[1] == pytest.approx(k[2], rel=0.01)
    assert k[3] == pytest.approx(10.33, abs=0.02)
    assert np.all(np.diff(effects.calzetti00(np.geomspace(900, 20000, 200))) < 0)


def test_damped_lya_equivalent_width_follows_the_square_root_law():
    # on the damping part of the curve of growth W = 7.3 A (N / 1e20)^(1/2)
    wave = np.linspace(900, 1550, 400_001)
    for log_n in (20.3, 21.0, 21.7):
        w = integrate.trapezoid(1 - np.exp(-effects.lya_optical_depth(wave, log_n)), wave)
        assert w == pytest.approx(7.3 * np.sqrt(10 ** (log_n - 20)), rel=0.03)


def test_dla_is_opaque_at_its_centre_and_below_its_lyman_limit():
    wave = np.geomspace(700, 2000, 5000)
    t = effects.dla_transmission(wave, z_qso=3.0, z_abs=2.5, log_nhi=20.5)
    at = lambda lam_abs: np.argmin(np.abs(wave * 4.0 / 3.5 - lam_abs))  # noqa: E731
    assert t[at(1215.67)] < 1e-6 and t[at(900.0)] < 1e-6
    assert t[at(1400.0)] > 0.99 and np.all(t[wave > 1300] > 0.999)


def test_dla_incidence_and_columns():
    rng = np.random.default_rng(1)
    z = np.full(200_000, 3.0)
    has, z_abs, nhi = effects.draw_dlas(z, rng)
    path = (1 - 3000 / 299792.458) * 4 - 1 - (4 * 1025.72 / 1215.67 - 1)
    assert has.mean() == pytest.approx(1 - np.exp(-0.25 * path), abs=0.005)
    assert np.all((z_abs[has] < 3.0) & (z_abs[has] > 2.37))
    # an exponential tail of 0.4 dex above 20.3, capped at 22
    tail = nhi[has] - 20.3
    capped = stats.expon(scale=0.4).sf(1.7)
    assert np.mean(np.isclose(tail, 1.7)) == pytest.approx(capped, abs=0.005)
    below = stats.truncexpon(b=1.7 / 0.4, scale=0.4)
    assert stats.kstest(tail[~np.isclose(tail, 1.7)], below.cdf).pvalue > 1e-3
    assert not effects.draw_dlas(np.zeros(10), rng)[0].any()  # no forest at z = 0


def test_bal_troughs_sit_blueward_of_their_lines():
    wave = np.linspace(1100, 1700, 6001)
    t = effects.bal_transmission(wave, [3000.0], [15000.0], [0.8])[0]
    v_civ = 299792.458 * (1549.06 - wave) / 1549.06
    inside = (v_civ > 5000) & (v_civ < 13000)
    assert t[inside].max() < 0.25 and t[wave > 1560].min() > 0.99


def test_reddening_draws_are_exponential():
    rng = np.random.default_rng(2)
    draws = effects.draw_ebv(20_000, 0.05, rng)
    assert stats.kstest(draws, stats.expon(scale=0.05).cdf).pvalue > 1e-3


def test_host_fraction_draws_follow_their_beta_law():
    rng = np.random.default_rng(3)
    for mag in (-25.0, -22.5, -20.0):
        m = effects.host_fraction_mean(mag)
        k = effects.HOST_CONCENTRATION
        draws = effects.draw_host_fraction(np.full(20_000, mag), rng)
        assert stats.kstest(draws, stats.beta(m * k, (1 - m) * k).cdf).pvalue > 1e-3
    # rising to low luminosity
    assert effects.host_fraction_mean(-25) < 0.05 < effects.host_fraction_mean(-20) - 0.5


def test_line_scaling_changes_only_the_emission():
    wave = np.linspace(4000, 8000, 4001)
    cont = 1 + (wave - 4000) / 4000
    line = 5 * np.exp(-0.5 * ((wave - 6563) / 3) ** 2)
    flux = (cont + line)[None, :]
    est = effects.continuum(flux, 301)
    np.testing.assert_allclose(est[0, ::200], cont[::200], rtol=0.01)
    out = effects.scale_lines(flux, est, np.array([2.0]))
    line_flux = lambda f: integrate.trapezoid(f - cont, wave)  # noqa: E731
    assert line_flux(out[0]) == pytest.approx(2 * line_flux(flux[0]), rel=0.02)
