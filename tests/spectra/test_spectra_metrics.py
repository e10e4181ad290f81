"""Every evaluation metric against a hand computation or scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion

from jpasbatch.spectra.evaluate import (
    calibration,
    comparison_table,
    delta_z,
    dv_accuracy,
    dv_kms,
    gasnet_bias,
    good_fraction,
    metrics_table,
    redshift_metrics,
)

C = 299792.458


def test_dv_and_its_accuracy_by_hand():
    z_true = np.array([1.0, 2.0, 0.5, 3.0])
    # offsets of 3000, 9000, 20000 and 40000 km/s
    dv = np.array([3000.0, -9000.0, 20000.0, 40000.0])
    z_pred = z_true + dv / C * (1 + z_true)
    assert np.allclose(dv_kms(z_pred, z_true), dv)
    acc = dv_accuracy(z_pred, z_true)
    assert acc == {6000.0: 0.25, 12000.0: 0.5, 30000.0: 0.75}


def test_gasnet_bias_good_fraction_and_delta_z_by_hand():
    z_true = np.array([0.1, 0.2, 0.3])
    z_pred = np.array([0.1011, 0.25, 0.3])
    bias = gasnet_bias(z_pred, z_true)
    assert bias == pytest.approx([np.log(1.1011 / 1.1), np.log(1.25 / 1.2), 0.0])
    assert good_fraction(z_pred, z_true, 0.0015) == pytest.approx(2 / 3)  # 0.00100, 0.0408, 0
    assert delta_z(z_pred, z_true) == pytest.approx([0.0011 / 1.1, 0.05 / 1.2, 0.0])


def test_error_calibration_by_hand():
    z_true = np.zeros(5)
    z_pred = np.array([0.05, 0.15, 0.25, 0.35, 0.0])
    sigma = np.full(5, 0.1)
    assert calibration(z_pred, z_true, sigma) == {1: 0.4, 2: 0.6, 3: 0.8}
    # Gaussian errors with the right sigma: 68 / 95 / 99.7 %
    rng = np.random.default_rng(0)
    s = rng.uniform(0.01, 0.1, 200_000)
    cal = calibration(rng.normal(0, s), np.zeros_like(s), s)
    assert cal[1] == pytest.approx(0.6827, abs=0.005) and cal[3] == pytest.approx(0.9973, abs=0.001)


def test_redshift_metrics_by_hand():
    z_true = np.array([1.0, 1.0, 2.0, 2.0])
    z_pred = np.array([1.0, 1.2, 2.0, 1.65])
    m = redshift_metrics(z_pred, z_true, sigma=np.full(4, 0.1), robust=[1, 0, 1, 1],
                         good_threshold=0.015)  # fmt: skip
    assert m["mae"] == pytest.approx(0.55 / 4)
    assert m["dz"] == pytest.approx((0.2 / 2 + 0.35 / 3) / 4)
    assert (
        m["gf"] == 0.5 and m["robust_fraction"] == 0.75 and m["gf_robust"] == pytest.approx(2 / 3)
    )
    assert m["within1"] == 0.5 and m["within3"] == 0.75


def test_metrics_table_confusion_and_accuracy_match_sklearn():
    rng = np.random.default_rng(3)
    n = 300
    true = rng.choice(["STAR", "GALAXY", "QSO"], n)
    pred = np.where(rng.random(n) < 0.8, true, rng.choice(["STAR", "GALAXY", "QSO"], n))
    z_true = np.where(true == "STAR", 0.0, rng.uniform(0.1, 3, n))
    table = pd.DataFrame({"CLASS_TRUE": true, "CLASS": pred, "Z_TRUE": z_true})
    for c in ("GALAXY", "QSO"):
        table[f"Z_{c}"] = z_true + rng.normal(0, 0.01, n)
        table[f"Z_{c}_ERR"] = 0.01
    table["Z"] = np.where(pred == "STAR", 0, table["Z_GALAXY"])
    table["Z_FNET"] = z_true
    summary, per_class, cm = metrics_table(table, {"GALAXY": 0.02, "QSO": 0.005})
    labels = ["STAR", "GALAXY", "QSO"]
    assert np.array_equal(cm, sk_confusion(true, pred, labels=labels))
    assert summary["accuracy"] == pytest.approx(accuracy_score(true, pred))
    assert summary["fnet_dv6000_QSO"] == 1.0
    row = per_class[per_class["model"].str.startswith("GaSNet-II z_galaxy")].iloc[0]
    assert row["robust_fraction"] == 1.0 and row["n"] == (true == "GALAXY").sum()
    qso = per_class[per_class["model"].str.startswith("GaSNet-II z_qso")].iloc[0]
    assert qso["robust_fraction"] == 0.0  # sigma 0.01 > validation MAE 0.005
    comp = comparison_table(summary)
    assert comp.loc["3-class accuracy", "ours (emulated test)"] == summary["accuracy"]
    assert comp.loc["|dv| < 6000 km/s, QSOs (FNet)", "FNet DR16Q"] == 0.970


def test_the_z_err_model_recovers_a_known_scale_and_velocity_floor():
    from jpasbatch.spectra.evaluate import fit_z_err_model
    from jpasbatch.spectra.refine_stage import model_z_err

    rng = np.random.default_rng(5)
    n = 4000
    z_true = rng.uniform(0.0, 2.0, n)
    curv = rng.lognormal(np.log(2e-4), 0.7, n)  # the fit's curvature errors
    sigma = np.hypot(2.0 * curv, 80.0 * (1 + z_true) / 299792.458)
    z_pred = z_true + sigma * rng.standard_normal(n)
    scale, floor = fit_z_err_model(z_pred, z_true, curv)
    assert scale == pytest.approx(2.0, abs=0.25) and floor == pytest.approx(80.0, abs=30.0)
    err = model_z_err(curv, z_pred, ["GALAXY"] * n, {"GALAXY": (scale, floor)})
    d = np.abs(z_pred - z_true)
    assert np.mean(d <= err) == pytest.approx(0.683, abs=0.015)
    assert np.mean(d <= 2 * err) == pytest.approx(0.954, abs=0.015)
    # a scale alone cannot match both: the tails of this mixture are not a scaled curvature
    assert fit_z_err_model(z_pred, z_true, np.full(n, 1e-9))[1] > 0


def test_the_z_err_model_minimises_the_larger_miss_on_a_mixture_of_two_error_scales():
    # the emulator's two template families: errors 3x apart that the fit cannot tell apart
    from jpasbatch.spectra.evaluate import GAUSS_WITHIN, fit_z_err_model

    rng = np.random.default_rng(7)
    n = 3000
    z_true = rng.uniform(0.0, 1.0, n)
    curv = rng.lognormal(np.log(1e-4), 0.5, n)
    true_sigma = curv * np.where(rng.random(n) < 0.5, 1.0, 3.0)
    z_pred = z_true + true_sigma * rng.standard_normal(n)
    d = np.abs(z_pred - z_true)

    def miss(a, v):
        s = np.hypot(a * curv, v * (1 + z_pred) / 299792.458)
        f = np.mean(d <= s), np.mean(d <= 2 * s)
        return max(abs(f[0] / GAUSS_WITHIN[0] - 1), abs(f[1] / GAUSS_WITHIN[1] - 1))

    a, v = fit_z_err_model(z_pred, z_true, curv)
    brute = min(miss(s, f) for s in np.arange(0.5, 6.0001, 0.05) for f in np.arange(0, 401, 5.0))
    assert miss(a, v) == pytest.approx(brute, abs=1e-9)
    assert miss(a, v) < 0.1  # "calibrated within 10 %" at 1 and 2 sigma
