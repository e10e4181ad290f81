"""Sim-to-real diagnostics: S/N KS at fixed magnitude, figures and the Markdown report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from jpasbatch.catalog.schemas import BANDS, CLASSES
from jpasbatch.mocks.report import (
    plot_colour_colour,
    plot_number_counts,
    snr_ks,
    snr_ks_summary,
    write_report,
)
from jpasbatch.physics.noise import pivot_wavelengths

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
I_COL, J0660 = BANDS.index("iSDSS"), BANDS.index("J0660")
PIVOT = pivot_wavelengths()
#: Depth-like law: constant flux noise per band, 5 sigma at AB 22.5.
SIGMA = 10 ** (-0.4 * (22.5 + 48.6)) * 2.99792458e18 / PIVOT**2 / 5


def _catalogue(n: int, seed: int, noise_scale: float = 1.0):
    """Power-law-ish spectra, iSDSS 17-24 mag, Gaussian flux noise of constant sigma."""
    rng = np.random.default_rng(seed)
    m_i = rng.uniform(17, 24, (n, 1))
    slope = rng.uniform(0, 2, (n, 1))  # mag per 5000 A, fainter in the blue
    mag = m_i + slope * (PIVOT[I_COL] - PIVOT) / 5000
    true = 10 ** (-0.4 * (mag + 48.6)) * 2.99792458e18 / PIVOT**2
    sigma = noise_scale * SIGMA
    flux = true + rng.normal(0, 1, true.shape) * sigma
    return flux, sigma / np.abs(flux), rng.choice(CLASSES, n)


J0400 = BANDS.index("J0400")


@pytest.fixture(scope="module")
def cats():
    obs = _catalogue(5000, 1)
    # The same survey with holes: a band missing everywhere (J0400, also a panel of the
    # S/N figure), no iSDSS for some objects, no J0660 error for others.
    hflux, herr = obs[0].copy(), obs[1].copy()
    hflux[:, J0400] = herr[:, J0400] = np.nan
    hflux[:100, I_COL] = np.nan
    herr[100:200, J0660] = np.nan
    herr[200:250, J0660] = 0.0  # infinite S/N: not a usable value either
    return {
        "obs": obs,
        "holed": (hflux, herr, obs[2]),
        "same": _catalogue(5000, 2),
        "double": _catalogue(5000, 3, noise_scale=2.0),
    }


@pytest.fixture(scope="module")
def ks(cats):
    (of, oe, _), (sf, se, _), (df, de, _) = cats["obs"], cats["same"], cats["double"]
    return {"same": snr_ks(of, oe, sf, se), "double": snr_ks(of, oe, df, de)}


@pytest.fixture(scope="module")
def report(cats, tmp_path_factory):
    """One report on the holed survey, worse model first (picking the first one fails)."""
    out_dir = tmp_path_factory.mktemp("report")
    of, oe, oc = cats["holed"]
    models = {name: cats[name][:2] for name in ("double", "same")}
    out = write_report(
        out_dir, obs_flux=of, obs_relerr=oe, obs_class=oc,
        models=models, mock_class=cats["same"][2], area_deg2=2.0,
    )  # fmt: skip
    return out_dir, out


def _ab(flux, col):
    """AB magnitude written out here, independently of jpasbatch.physics.photometry."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return -2.5 * np.log10(flux[:, col] * PIVOT[col] ** 2 / 2.99792458e18) - 48.6


def test_same_error_law_gives_small_ks_and_double_errors_larger(ks):
    same, double = ks["same"], ks["double"]
    assert list(same.columns) == ["band", "ks", "n_obs", "n_mock"]
    assert list(same["band"]) == list(BANDS)
    assert (same["ks"] < 0.1).all(), same.sort_values("ks").tail()
    assert (same["n_obs"] > 4000).all() and (same["n_mock"] > 4000).all()
    assert (double["ks"] > same["ks"] + 0.1).all()


def test_ks_matches_scipy_on_one_bin_and_weighting(cats):
    (of, oe, _), (df, de, _) = cats["obs"], cats["double"]

    def by_hand(lo, hi):
        a = np.log10(1 / oe[(_ab(of, I_COL) >= lo) & (_ab(of, I_COL) < hi), J0660])
        b = np.log10(1 / de[(_ab(df, I_COL) >= lo) & (_ab(df, I_COL) < hi), J0660])
        return ks_2samp(a, b).statistic, len(a), len(b)

    one = snr_ks(of, oe, df, de, mag_bins=np.array([20.0, 20.5])).iloc[J0660]
    ks1, na, nb = by_hand(20.0, 20.5)
    assert one["ks"] == pytest.approx(ks1, abs=1e-12)
    assert (one["n_obs"], one["n_mock"]) == (na, nb)
    # Two bins: the mean is weighted by the observed counts.
    two = snr_ks(of, oe, df, de, mag_bins=np.array([20.0, 20.5, 21.0])).iloc[J0660]
    ks2, na2, _ = by_hand(20.5, 21.0)
    assert two["ks"] == pytest.approx((ks1 * na + ks2 * na2) / (na + na2), abs=1e-12)


def test_nan_bands_are_ignored(cats, ks, report):
    (of, oe, _), (sf, se, _) = cats["holed"], cats["same"]
    res = snr_ks(of, oe, sf, se)
    assert np.isnan(res.loc[J0400, "ks"]) and res.loc[J0400, "n_obs"] == 0
    assert res.drop(index=J0400)["ks"].notna().all()
    # Objects without iSDSS or a usable J0660 error drop out of the counts, nothing else.
    m_i = _ab(cats["obs"][0], I_COL)
    binned = (m_i >= 17) & (m_i < 24)
    assert res.loc[J0660, "n_obs"] == ks["same"].loc[J0660, "n_obs"] - binned[:250].sum()
    assert res.loc[0, "n_obs"] == ks["same"].loc[0, "n_obs"] - binned[:100].sum()
    out_dir, out = report
    assert np.isnan(out["ks"].loc["J0400"]).all()
    assert np.isfinite(out["ks"].loc["mean"]).all()
    assert "| J0400 | n/a | n/a |" in (out_dir / "report.md").read_text()


def test_summary_has_band_rows_model_columns_and_mean():
    a = pd.DataFrame({"band": ["x", "y"], "ks": [0.1, np.nan], "n_obs": 1, "n_mock": 1})
    b = pd.DataFrame({"band": ["x", "y"], "ks": [0.3, 0.5], "n_obs": 1, "n_mock": 1})
    s = snr_ks_summary({"A": a, "B": b})
    assert list(s.index) == ["x", "y", "mean"] and list(s.columns) == ["A", "B"]
    assert s.loc["mean", "A"] == pytest.approx(0.1)
    assert s.loc["mean", "B"] == pytest.approx(0.4)


def test_write_report_names_the_closer_model(report):
    out_dir, out = report
    assert out["better_model"] == "same"
    assert list(out["ks"].columns) == ["double", "same"] and out["ks"].index[-1] == "mean"
    assert (out["ks"]["same"].iloc[:-1].dropna() < 0.1).all()
    names = sorted(p.name for p in out["files"])
    assert names == sorted(
        ["snr_vs_mag.png", "colour_colour.png", "number_counts.png", "snr_ks.csv", "report.md"]
    )
    for p in out["files"]:
        assert p.parent == out_dir and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_MAGIC
    csv = pd.read_csv(out_dir / "snr_ks.csv", index_col="band")
    assert np.allclose(csv.to_numpy(), out["ks"].to_numpy(), equal_nan=True)
    md = (out_dir / "report.md").read_text()
    n = len(BANDS) - 1  # J0400 is missing from the survey
    assert "`same`" in md and f"best in {n} of {n} bands" in md
    assert "**mean**" in md and "| J0660 |" in md
    for png in ("snr_vs_mag.png", "colour_colour.png", "number_counts.png"):
        assert f"]({png})" in md


def test_plots_accept_arrays_and_no_observed_classes(cats, tmp_path):
    # write_report covers dict inputs and observed classes; here the other call forms.
    (of, _, _), (sf, _, sc) = cats["obs"], cats["same"]
    r = BANDS.index("rSDSS")
    paths = [
        plot_colour_colour(of, None, sf, sc, tmp_path / "cc.png"),
        plot_number_counts(_ab(of, r), _ab(sf, r), tmp_path / "nc.png"),
    ]
    for p in paths:
        assert p.exists() and p.read_bytes()[:8] == PNG_MAGIC
