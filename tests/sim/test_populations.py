"""Tests of the sky populations: determinism, the published models, miniJPAS sanity targets."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from jpasbatch.sim import populations as pops
from jpasbatch.sim.populations import (
    CLASSES,
    POINTLIKE_HALF_LIGHT_ARCSEC,
    QSO_SPLIT_Z,
    PopulationParams,
    cumulative_counts,
    expected_counts,
    galaxy_dn_dm,
    qso_counts_g,
    sample_population,
)

AREA = 4.0
#: miniJPAS QSO III (A&A 2023) Table 1: point-like sources of the 1-deg2 test set, r <= 23.6.
MINIJPAS = {"GALAXY": 6410, "STAR": 2190, "QSO": 510}


@pytest.fixture(scope="module")
def sky() -> pd.DataFrame:
    """Four square degrees to r = 24, shared by the statistical tests."""
    return sample_population(AREA, np.random.default_rng(2024))


def poisson_consistent(n: int, mu: float, rel: float = 0.0) -> bool:
    """``n`` within 5 sigma of a Poisson mean ``mu`` (plus a relative model tolerance)."""
    return abs(n - mu) <= 5 * np.sqrt(mu) + rel * mu + 1


def test_same_seed_same_population():
    a = sample_population(0.2, np.random.default_rng(7))
    b = sample_population(0.2, np.random.default_rng(7))
    c = sample_population(0.2, np.random.default_rng(8))
    pd.testing.assert_frame_equal(a, b)
    assert len(a) > 1000
    assert not (len(a) == len(c) and np.array_equal(a["MAG_R"], c["MAG_R"]))


def test_columns_and_ranges(sky):
    p = PopulationParams()
    assert list(sky.columns) == ["CLASS", "Z", "MAG_R", "MAG_G", "SUBTYPE", "HALF_LIGHT_ARCSEC"]
    assert set(sky["CLASS"]) == set(CLASSES)
    assert sky["MAG_R"].between(p.r_min, p.r_max).all()
    by = {c: sky[sky["CLASS"] == c] for c in CLASSES}
    assert (by["STAR"]["Z"] == 0).all()
    assert set(by["STAR"]["SUBTYPE"]) <= {"O", "B", "A", "F", "G", "K", "M", "WD"}
    gal = by["GALAXY"]
    assert gal["Z"].between(p.galaxy_z_min, p.galaxy_z_max).all()
    assert set(gal["SUBTYPE"]) == {"early", "spiral", "starburst"}
    assert (gal["HALF_LIGHT_ARCSEC"] > 0).all() and np.isfinite(gal["HALF_LIGHT_ARCSEC"]).all()
    qso = sky[sky["CLASS"].str.startswith("QSO")]
    assert qso["Z"].between(p.qso_z_min, p.qso_z_max).all()
    assert (qso["SUBTYPE"] == "").all() and np.isfinite(qso["MAG_G"]).all()
    point = sky[sky["CLASS"] != "GALAXY"]
    assert (point["HALF_LIGHT_ARCSEC"] == 0).all()
    assert sky.loc[~sky["CLASS"].str.startswith("QSO"), "MAG_G"].isna().all()


def test_qso_class_split_is_exact(sky):
    qso = sky[sky["CLASS"].str.startswith("QSO")]
    np.testing.assert_array_equal(qso["CLASS"] == "QSO_HIGH", qso["Z"] >= QSO_SPLIT_Z)
    assert qso["Z"].lt(QSO_SPLIT_Z).any() and qso["Z"].ge(QSO_SPLIT_Z).any()
    # the expected split is a cell edge: LOW + HIGH is the whole table, to rounding
    total = pops._tables(PopulationParams())["QSO"].sum()
    split = cumulative_counts("QSO_LOW", 24.0) + cumulative_counts("QSO_HIGH", 24.0)
    assert split == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_sampled_counts_are_poisson_consistent(sky, cls):
    for r_max in (20.0, 22.5, 24.0):
        n = int(((sky["CLASS"] == cls) & (sky["MAG_R"] <= r_max)).sum())
        mu = AREA * float(cumulative_counts(cls, r_max))
        assert poisson_consistent(n, mu), (cls, r_max, n, mu)
    assert expected_counts(AREA)[cls] == pytest.approx(AREA * cumulative_counts(cls, 24.0))


@pytest.mark.parametrize("cls", CLASSES)
def test_magnitudes_follow_the_model_counts(sky, cls):
    mags = sky.loc[sky["CLASS"] == cls, "MAG_R"].to_numpy()
    total = cumulative_counts(cls, 24.0)
    assert stats.kstest(mags, lambda m: cumulative_counts(cls, m) / total).pvalue > 1e-3


def test_galaxy_counts_are_cosmos2020_shifted_to_r():
    p = PopulationParams()
    i_centres = 19.25 + 0.5 * np.arange(len(pops._COSMOS2020_I))
    np.testing.assert_allclose(
        np.log10(galaxy_dn_dm(i_centres + p.galaxy_r_minus_i)), pops._COSMOS2020_I, atol=1e-12
    )
    # the sampler's cell table integrates the same dN/dm (independent quadrature)
    kinks = i_centres + p.galaxy_r_minus_i
    for r in (18.0, 21.0, 24.0):
        direct = integrate.quad(galaxy_dn_dm, p.r_min, r, points=kinks[kinks < r], limit=200)[0]
        assert cumulative_counts("GALAXY", r) == pytest.approx(direct, rel=2e-3)
    # and the sample's magnitudes follow that independent CDF
    grid = np.linspace(p.r_min, p.r_max, 20001)
    cdf = integrate.cumulative_trapezoid(galaxy_dn_dm(grid), grid, initial=0.0)
    mags = sample_population(0.5, np.random.default_rng(3)).query("CLASS == 'GALAXY'")["MAG_R"]
    assert stats.kstest(mags, lambda m: np.interp(m, grid, cdf / cdf[-1])).pvalue > 1e-3


def test_galaxy_redshifts_follow_the_bpz_prior(sky):
    gal = sky[sky["CLASS"] == "GALAXY"]
    assert 0.5 <= gal.loc[gal["MAG_R"].between(21.8, 22.2), "Z"].median() <= 0.7
    bright, faint = gal[gal["MAG_R"] < 20], gal[gal["MAG_R"] > 23]
    assert bright["Z"].median() < 0.4 < faint["Z"].median()
    # BPZ: the early-type share falls with magnitude, the irregular share rises
    early = [(g["SUBTYPE"] == "early").mean() for g in (bright, faint)]
    burst = [(g["SUBTYPE"] == "starburst").mean() for g in (bright, faint)]
    assert early[0] > early[1] and burst[0] < burst[1]


def test_qso_counts_to_g23():
    n = qso_counts_g(23.0)
    assert 150 <= n <= 350  # Abramo et al. (2012): ~240 deg^-2 to g = 23
    assert qso_counts_g(22.5) < n
    draw = sample_population(10.0, np.random.default_rng(11))
    n_g = int((draw["MAG_G"] < 23.0).sum())
    assert poisson_consistent(n_g, 10 * n, rel=0.02), (n_g, 10 * n)


def test_qso_counts_match_pd16_table7():
    # PD16 Table 7 (PLE+LEDE): QSOs per 10^4 deg^2 in 0.5-mag r bins, for 1 < z < 2, 2 < z < 3,
    # 3 < z < 4; the model fits 0.68 < z < 4, g < 22.5, so test 20.5 < r < 23.5.
    table7 = {
        20.75: (135480, 81153, 12487),
        21.75: (216865, 139912, 26781),
        22.75: (340627, 224720, 45094),
        23.25: (426753, 283998, 57240),
    }
    tab = pops._tables(PopulationParams())
    rc = (tab["r_edges"][1:] + tab["r_edges"][:-1]) / 2
    zc = (tab["z_edges"][1:] + tab["z_edges"][:-1]) / 2
    for r0, row in table7.items():
        in_r = np.abs(rc - r0) < 0.25
        for lo, ref in zip((1, 2, 3), row, strict=True):
            ours = 1e4 * tab["QSO"][(zc > lo) & (zc < lo + 1)][:, in_r].sum()
            assert ours == pytest.approx(ref, rel=0.15), (r0, lo, ours, ref)


def test_minijpas_point_like_mix(sky):
    exp = expected_counts(1.0, r_max=23.6, pointlike=True)
    n_qso = exp["QSO_LOW"] + exp["QSO_HIGH"]
    assert MINIJPAS["GALAXY"] / 2 <= exp["GALAXY"] <= 2 * MINIJPAS["GALAXY"]
    assert MINIJPAS["QSO"] / 2 <= n_qso <= 2 * MINIJPAS["QSO"]
    assert 0.2 <= exp["QSO_HIGH"] / n_qso <= 0.4
    # Stars: the miniJPAS value is a Besancon-based mock; a thin disc of H = 300 pc alone
    # holds ~2000 M/K dwarfs deg^-2 to r = 23.6 at b = 60, so allow a factor of three.
    assert MINIJPAS["STAR"] / 3 <= exp["STAR"] <= 3 * MINIJPAS["STAR"]
    # the sample agrees with the analytic point-like expectation
    faint_ok = sky["MAG_R"] <= 23.6
    small = sky["HALF_LIGHT_ARCSEC"] < POINTLIKE_HALF_LIGHT_ARCSEC
    n_gal = int((faint_ok & small & (sky["CLASS"] == "GALAXY")).sum())
    assert poisson_consistent(n_gal, AREA * exp["GALAXY"], rel=0.02), (n_gal, exp["GALAXY"])
    n_all = expected_counts(1.0, r_max=23.6)["GALAXY"]
    assert 0.05 < exp["GALAXY"] / n_all < 0.3


def test_stars_rise_slower_than_galaxies_and_are_mostly_gkm(sky):
    def slope(cls):  # d log10 N(<r) / dr between r = 20 and 23.5
        return np.log10(cumulative_counts(cls, 23.5) / cumulative_counts(cls, 20.0)) / 3.5

    assert 0 < slope("STAR") < slope("GALAXY")
    stars = sky[(sky["CLASS"] == "STAR") & sky["MAG_R"].between(22.0, 23.6)]
    share = stars["SUBTYPE"].value_counts(normalize=True)
    assert share.reindex(["G", "K", "M"]).sum() > 0.8
    assert 0.01 < share.reindex(["A", "F", "WD"]).fillna(0).sum() < 0.2


def test_one_square_degree_to_r24_is_fast():
    params = PopulationParams(star_scale=1.0 + 1e-9)  # not cached yet: tables are built too
    start = time.perf_counter()
    out = sample_population(1.0, np.random.default_rng(0), params)
    assert time.perf_counter() - start < 2.0
    assert 40_000 < len(out) < 120_000
