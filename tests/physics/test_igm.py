"""Tests of the Inoue et al. (2014) mean IGM transmission."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jpasbatch.core.errors import InputError
from jpasbatch.physics import igm
from jpasbatch.physics.igm import LYMAN_ALPHA, igm_transmission

RNG = np.random.default_rng(20140805)


def test_unity_redward_of_lyman_alpha():
    z = RNG.uniform(0.0, 7.0, 50)
    lam = np.geomspace(900.0, 20000.0, 3000)
    t = igm_transmission(lam, z)
    red = lam[None, :] > (1.0 + z[:, None]) * LYMAN_ALPHA * (1.0 + 1e-12)
    assert np.all(t[red] == 1.0)
    # ... and there is absorption just blueward of it (for z > 0.001).
    z = z[z > 0.01]
    blue = np.diag(igm_transmission((1.0 + z) * LYMAN_ALPHA * 0.999, z))
    assert np.all(blue < 1.0)


def test_no_absorption_at_z0():
    lam = np.geomspace(100.0, 30000.0, 5000)
    assert np.all(igm_transmission(lam, 0.0) == 1.0)


def test_range_open_zero_to_one():
    lam = np.geomspace(912.0, 12000.0, 2000)
    t = igm_transmission(lam, np.linspace(0.0, 6.0, 61))
    assert np.all(t > 0.0)
    assert np.all(t <= 1.0)


@pytest.mark.parametrize("lam_rest", [913.0, 950.0, 1000.0, 1025.0, 1100.0, 1200.0, 1215.0])
def test_monotonic_in_z_lyman_series(lam_rest):
    """At fixed rest wavelength the transmission falls as the source recedes.

    It starts at 1: at small z the absorbers would have to be at z < 0.
    """
    z = np.linspace(0.0, 7.0, 701)
    t = np.array([igm_transmission(np.array([lam_rest * (1 + zi)]), zi)[0] for zi in z])
    absorbed = t < 1.0
    assert t[0] == 1.0
    assert np.all(np.diff(t) <= 0.0)
    assert np.all(np.diff(t[absorbed]) < 0.0)
    assert absorbed.sum() > 600


@pytest.mark.parametrize("z_lo, z_hi", [(0.0, 1.2), (1.2, 4.7), (4.7, 7.0)])
@pytest.mark.parametrize("lam_rest", [400.0, 700.0, 900.0])
def test_monotonic_in_z_lyman_continuum(lam_rest, z_lo, z_hi):
    """Below the Lyman limit, monotonic within each LAF regime of eqs. (25)-(27).

    At z_S = 1.2 and 4.7 the published three-digit coefficients make the LAF
    continuum depth jump slightly (by 0.05 in tau at 900 A, z = 4.7), so the
    check stops at those points.
    """
    z = np.linspace(z_lo, z_hi, 400, endpoint=False)[1:]
    t = np.array([igm_transmission(np.array([lam_rest * (1 + zi)]), zi)[0] for zi in z])
    assert np.all(np.diff(t) <= 0.0)
    assert t[-1] < t[0]


@pytest.mark.parametrize("z", [2.5, 3.0, 3.5])
def test_lya_forest_tau_eff_matches_faucher_giguere_2008(z):
    """-ln <T> just blueward of Lya vs tau_eff = 0.0018 (1+z)^3.92 (FG08)."""
    # 1195-1215 A rest lies between Lyb (1025.72 A) and Lya: only the Lya line acts.
    lam_rest = np.linspace(1195.0, 1215.0, 201)
    t = igm_transmission(lam_rest * (1 + z), z)
    tau_eff = -np.log(t.mean())
    z_abs = np.mean(lam_rest * (1 + z) / LYMAN_ALPHA - 1.0)
    fg08 = 0.0018 * (1 + z_abs) ** 3.92
    assert abs(tau_eff / fg08 - 1.0) < 0.25


# --- independent scalar implementation, written from the paper's equations -------


def _tau_scalar(lam: float, z_s: float, lines, a_laf, a_dla) -> float:
    tau = 0.0
    for lam_j, (a1, a2, a3), (d1, d2) in zip(lines, a_laf, a_dla, strict=True):
        if lam_j < lam < lam_j * (1.0 + z_s):
            # eq. (21)
            if lam < 2.2 * lam_j:
                tau += a1 * (lam / lam_j) ** 1.2
            elif lam < 5.7 * lam_j:
                tau += a2 * (lam / lam_j) ** 3.7
            else:
                tau += a3 * (lam / lam_j) ** 5.5
            # eq. (22)
            if lam < 3.0 * lam_j:
                tau += d1 * (lam / lam_j) ** 2
            else:
                tau += d2 * (lam / lam_j) ** 3
    lam_l = 911.8
    x = max(lam, lam_l) / lam_l
    u = 1.0 + z_s
    if x < u:
        # eqs. (25)-(27)
        if z_s < 1.2:
            tau += 0.325 * (x**1.2 - u**-0.9 * x**2.1)
        elif z_s < 4.7:
            if x < 2.2:
                tau += 2.55e-2 * u**1.6 * x**2.1 + 0.325 * x**1.2 - 0.250 * x**2.1
            else:
                tau += 2.55e-2 * (u**1.6 * x**2.1 - x**3.7)
        else:
            if x < 2.2:
                tau += 5.22e-4 * u**3.4 * x**2.1 + 0.325 * x**1.2 - 3.14e-2 * x**2.1
            elif x < 5.7:
                tau += 5.22e-4 * u**3.4 * x**2.1 + 0.218 * x**2.1 - 2.55e-2 * x**3.7
            else:
                tau += 5.22e-4 * (u**3.4 * x**2.1 - x**5.5)
        # eqs. (28)-(29)
        if z_s < 2.0:
            tau += 0.211 * u**2 - 7.66e-2 * u**2.3 * x**-0.3 - 0.135 * x**2
        elif x < 3.0:
            tau += (
                0.634 + 4.70e-2 * u**3 - 1.78e-2 * u**3.3 * x**-0.3 - 0.135 * x**2
                - 0.291 * x**-0.3
            )  # fmt: skip
        else:
            tau += 4.70e-2 * u**3 - 1.78e-2 * u**3.3 * x**-0.3 - 2.92e-2 * x**3
    return math.exp(-max(tau, 0.0))


def test_vectorised_equals_bruteforce():
    table = np.loadtxt(igm._data_path("LAFcoeff.txt"))
    dla = np.loadtxt(igm._data_path("DLAcoeff.txt"))
    lines, a_laf, a_dla = table[:, 1], table[:, 2:5], dla[:, 2:4]
    z = np.concatenate([RNG.uniform(0.0, 7.5, 24), [0.0, 1.2, 2.0, 4.7]])
    lam = np.sort(RNG.uniform(700.0, 11000.0, 180))
    got = igm_transmission(lam, z)
    want = np.array([[_tau_scalar(li, zi, lines, a_laf, a_dla) for li in lam] for zi in z])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.any(want < 0.5)  # the comparison covers real absorption


def test_shapes_and_scalar_rows():
    lam = np.linspace(3000.0, 9000.0, 50)
    z = np.array([0.5, 2.8, 4.9])
    t = igm_transmission(lam, z)
    assert t.shape == (3, 50)
    assert igm_transmission(lam, 2.8).shape == (50,)
    np.testing.assert_array_equal(t[1], igm_transmission(lam, 2.8))


@pytest.mark.parametrize(
    "lam, z",
    [(np.array([4000.0]), -0.1), (np.array([4000.0]), np.nan), (np.ones((2, 2)), 1.0),
     (np.array([-1.0]), 1.0), (np.array([4000.0]), np.ones((2, 2)))],
)  # fmt: skip
def test_bad_input_raises(lam, z):
    with pytest.raises(InputError):
        igm_transmission(lam, z)


def test_malformed_coefficient_file_named(tmp_path, monkeypatch):
    bad = tmp_path / "LAFcoeff.txt"
    bad.write_text("2 1215.67 0.1\n")
    monkeypatch.setattr(igm, "_data_path", lambda name: tmp_path / name)
    igm.lyman_series_coefficients.cache_clear()
    try:
        with pytest.raises(InputError, match=r"LAFcoeff\.txt"):
            igm.lyman_series_coefficients()
    finally:
        monkeypatch.undo()
        igm.lyman_series_coefficients.cache_clear()
