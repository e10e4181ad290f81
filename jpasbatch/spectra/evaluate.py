"""Metrics of spectral classification and redshifts, and the evaluation report.

Metrics (the papers' definitions):

* accuracy and the confusion matrix (rows: true class);
* |dv| = c |z_p - z_t| / (1 + z_t) accuracy: the fraction below 6000, 12000
  and 30000 km/s (FNet, DR16Q);
* GaSNet-II's ``Bias = |ln((1 + z_t) / (1 + z_p))|`` and good fraction
  ``N(Bias < thr) / N`` with thr 0.0015 for galaxies and 0.015 for QSOs;
* ``Delta z = |z_p - z_t| / (1 + z_t)`` (its mean) and ``MAE = mean |z_p - z_t|``;
* error calibration: the fraction with ``|z_p - z_t| <= k sigma_z``, k = 1, 2, 3
  (0.683, 0.954, 0.997 for Gaussian errors); and the robust fraction.

With refinement (:mod:`jpasbatch.spectra.refine_stage`), :func:`stage_table`
puts the network alone (``CLASS``, ``Z_NET``, ``Z_NET_ERR``) beside the
refined answer (``SPECTYPE``, ``Z``, ``Z_ERR``) per true class: accuracy,
|dv| below 1000 / 3000 / 6000 / 30000 km/s, catastrophic failures and the
``Z_ERR`` calibration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jpasbatch.core.errors import InputError
from jpasbatch.core.metrics import confusion_matrix
from jpasbatch.spectra.emulate import CLASSES
from jpasbatch.spectra.predict import C_KMS, SpectraModel, add_reference_columns
from jpasbatch.spectra.store import SpectraStore

#: |dv| thresholds of the FNet paper, km/s.
DV_THRESHOLDS = (6000.0, 12000.0, 30000.0)
#: |dv| thresholds of the network-vs-refined table, km/s (DESI's 1000 / 3000, FNet's 6000 ...).
STAGE_DV = (1000.0, 3000.0, 6000.0, 30000.0)
#: A catastrophic failure: the wrong class, or |dv| above this (km/s) for the true class.
CATASTROPHIC_KMS = {"STAR": 1000.0, "GALAXY": 1000.0, "QSO": 3000.0}
#: Fractions of Gaussian errors within 1 and 2 sigma.
GAUSS_WITHIN = (0.6827, 0.9545)
#: GaSNet-II good-fraction thresholds on Bias.
GOOD_THRESHOLDS = {"GALAXY": 0.0015, "QSO": 0.015}

#: The papers' numbers (metric key -> {source: value}) beside which ours are reported.
PAPER: dict[str, dict[str, float]] = {
    "accuracy": {"GaSNet-II SDSS DR16": 0.99, "GaSNet-II DESI EDR": 0.96,
                 "GaSNet-II 4MOST mocks": 0.98},
    "dz_GALAXY": {"GaSNet-II SDSS DR16": 0.0023, "GaSNet-II DESI EDR": 0.028,
                  "GaSNet-II 4MOST mocks": 0.0055},
    "gf_GALAXY": {"GaSNet-II SDSS DR16": 0.63, "GaSNet-II 4MOST mocks": 0.68},
    "dz_QSO": {"GaSNet-II SDSS DR16": 0.021, "GaSNet-II DESI EDR": 0.048,
               "GaSNet-II 4MOST mocks": 0.003},
    "gf_QSO": {"GaSNet-II 4MOST mocks": 0.71},
    "within3_GALAXY": {"GaSNet-II SDSS DR16": 0.96},
    "within3_QSO": {"GaSNet-II SDSS DR16": 0.96},
    "fnet_dv6000_QSO": {"FNet DR16Q": 0.970},
    "fnet_dv12000_QSO": {"FNet DR16Q": 0.980},
    "fnet_dv30000_QSO": {"FNet DR16Q": 0.989},
}  # fmt: skip
#: Row labels of the comparison table.
LABELS = {
    "accuracy": "3-class accuracy",
    "dz_GALAXY": "mean Delta z, galaxies",
    "gf_GALAXY": "good fraction (Bias < 0.0015), galaxies",
    "dz_QSO": "mean Delta z, QSOs",
    "gf_QSO": "good fraction (Bias < 0.015), QSOs",
    "within3_GALAXY": "within 3 sigma_z, galaxies",
    "within3_QSO": "within 3 sigma_z, QSOs",
    "dv6000_QSO": "|dv| < 6000 km/s, QSOs (GaSNet-II)",
    "fnet_dv6000_QSO": "|dv| < 6000 km/s, QSOs (FNet)",
    "fnet_dv12000_QSO": "|dv| < 12000 km/s, QSOs (FNet)",
    "fnet_dv30000_QSO": "|dv| < 30000 km/s, QSOs (FNet)",
}


def dv_kms(z_pred: np.ndarray, z_true: np.ndarray) -> np.ndarray:
    """Velocity difference c (z_p - z_t) / (1 + z_t), km/s."""
    return C_KMS * (np.asarray(z_pred) - np.asarray(z_true)) / (1 + np.asarray(z_true))


def dv_accuracy(z_pred, z_true, thresholds=DV_THRESHOLDS) -> dict[float, float]:
    """Fraction with |dv| below each threshold."""
    dv = np.abs(dv_kms(z_pred, z_true))
    return {t: float(np.mean(dv < t)) for t in thresholds}


def gasnet_bias(z_pred, z_true) -> np.ndarray:
    """GaSNet-II Eq. 9: |ln((1 + z_t) / (1 + z_p))|."""
    return np.abs(np.log((1 + np.asarray(z_true)) / (1 + np.asarray(z_pred))))


def good_fraction(z_pred, z_true, threshold: float) -> float:
    """GaSNet-II Eq. 10: fraction with Bias below ``threshold``."""
    return float(np.mean(gasnet_bias(z_pred, z_true) < threshold))


def delta_z(z_pred, z_true) -> np.ndarray:
    """GaSNet-II Eq. 11: |z_p - z_t| / (1 + z_t)."""
    return np.abs(np.asarray(z_pred) - np.asarray(z_true)) / np.abs(1 + np.asarray(z_true))


def calibration(z_pred, z_true, sigma, ks=(1, 2, 3)) -> dict[int, float]:
    """Fraction of |z_p - z_t| <= k sigma for each k."""
    d = np.abs(np.asarray(z_pred) - np.asarray(z_true))
    s = np.asarray(sigma)
    return {k: float(np.mean(d <= k * s)) for k in ks}


def fit_z_err_model(z_pred, z_true, z_err) -> tuple[float, float]:
    """``(scale, floor_kms)`` with ``hypot(scale z_err, floor_kms (1 + z) / c)`` calibrated.

    The pair whose fractions of ``|z_pred - z_true|`` within 1 and 2 of the
    modelled errors are both closest to a Gaussian's (0.683, 0.954): the
    smallest of the larger relative miss of the two, on a grid (scale 0.5-6 by
    0.05, floor 0-400 km/s by 5); a calibration "within 10 %" is one with that
    miss below 0.1. A scale alone cannot match both where the errors' tails are
    heavier than a Gaussian's (template mismatch adds a velocity error that does
    not shrink with noise); the floor is that part. Fit on correct redshifts of
    a validation set.
    """
    z_pred, z_true, z_err = (np.asarray(a, float) for a in (z_pred, z_true, z_err))
    ok = np.isfinite(z_pred) & np.isfinite(z_true) & np.isfinite(z_err)
    d, e, zz = np.abs(z_pred - z_true)[ok], z_err[ok], z_pred[ok]
    if d.size == 0:
        raise ValueError("no finite redshifts to calibrate on")
    scales = np.arange(0.5, 6.0001, 0.05)
    floors = np.arange(0.0, 400.0001, 5.0)
    v = floors[:, None] * (1 + zz)[None] / C_KMS  # (floors, n)
    best, arg = np.inf, (1.0, 0.0)
    for a in scales:
        sig = np.hypot(a * e[None], v)
        f1 = np.mean(d[None] <= sig, axis=1)
        f2 = np.mean(d[None] <= 2 * sig, axis=1)
        # the worse of the two; the squared sum breaks ties between equal misses
        miss = np.maximum(np.abs(f1 / GAUSS_WITHIN[0] - 1), np.abs(f2 / GAUSS_WITHIN[1] - 1))
        cost = miss + 1e-3 * ((f1 - GAUSS_WITHIN[0]) ** 2 + (f2 - GAUSS_WITHIN[1]) ** 2)
        i = int(np.argmin(cost))
        if cost[i] < best:
            best, arg = cost[i], (float(a), float(floors[i]))
    return arg


def redshift_metrics(z_pred, z_true, sigma=None, robust=None, good_threshold=None) -> dict:
    """Every redshift metric of one set of objects."""
    z_pred, z_true = np.asarray(z_pred, float), np.asarray(z_true, float)
    out = {"n": int(z_true.size)}
    if z_true.size == 0:
        return out
    out["mae"] = float(np.mean(np.abs(z_pred - z_true)))
    out["dz"] = float(np.mean(delta_z(z_pred, z_true)))
    out["dz_median"] = float(np.median(delta_z(z_pred, z_true)))
    for t, v in dv_accuracy(z_pred, z_true).items():
        out[f"dv{int(t)}"] = v
    if good_threshold is not None:
        out["gf"] = good_fraction(z_pred, z_true, good_threshold)
    if sigma is not None:
        for k, v in calibration(z_pred, z_true, sigma).items():
            out[f"within{k}"] = v
        out["sigma_median"] = float(np.median(sigma))
    if robust is not None:
        robust = np.asarray(robust, bool)
        out["robust_fraction"] = float(np.mean(robust))
        if robust.any() and good_threshold is not None:
            out["gf_robust"] = good_fraction(z_pred[robust], z_true[robust], good_threshold)
    return out


# --------------------------------------------------------------------------- on a store


def predict_store(
    model: SpectraModel, data: str | Path, split: str | None = "test", batch: int = 256,
    progress: bool = True, refine: bool = False, client=None,
) -> pd.DataFrame:  # fmt: skip
    """Predictions for a prepared-spectra folder's ``split`` rows, joined to its labels.

    ``refine``: add the template-fit refinement (Dask tasks on ``client`` if given).
    """
    from tqdm import tqdm

    from jpasbatch.core.progress import disable as progress_disable

    st = SpectraStore(data)
    idx = st.index
    rows = np.flatnonzero((idx["SPLIT"] == split).to_numpy()) if split else np.arange(len(idx))
    if rows.size == 0:
        raise InputError(f"no rows with SPLIT == {split!r}", path=data, column="SPLIT")
    parts, arrays = [], []
    for s in tqdm(range(0, len(rows), batch), desc="spectra", disable=progress_disable(progress)):
        r = rows[s : s + batch]
        flux, ivar, good = st.arrays(r)
        parts.append(model.predict_arrays(flux, good))
        if refine:
            arrays.append((flux, np.where(good, ivar, 0.0).astype(np.float32), parts[-1]))
    if refine:
        from jpasbatch.spectra.refine_stage import merge, refine_batches

        done = refine_batches(model.grid.wavelength, arrays, client, progress)
        parts = [merge(p, d) for p, d in zip(parts, done, strict=True)]
    pred = pd.concat(parts, ignore_index=True)
    labels = idx.iloc[rows].reset_index(drop=True)
    labels = labels.rename(columns={"CLASS": "CLASS_TRUE", "Z": "Z_TRUE"})
    table = pd.concat([labels, pred], axis=1)
    table["Z_REF"] = table["Z_TRUE"]
    return add_reference_columns(table)


def metrics_table(
    table: pd.DataFrame, val_mae: dict[str, float] | None = None
) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """Summary metrics, a per-class redshift table and the confusion matrix of predictions.

    ``table`` has ``CLASS_TRUE``, ``Z_TRUE`` and the columns of
    :meth:`~jpasbatch.spectra.predict.SpectraModel.predict_arrays`; ``val_mae``
    gives each regressor's robust threshold.
    """
    val_mae = val_mae or {}
    y = np.array([CLASSES.index(c) for c in table["CLASS_TRUE"]])
    p = np.array([CLASSES.index(c) for c in table["CLASS"]])
    cm = confusion_matrix(y, p, n_classes=len(CLASSES))
    summary: dict = {"n": len(table), "accuracy": float(np.mean(y == p))}
    for j, c in enumerate(CLASSES):
        summary[f"recall_{c}"] = float(cm[j, j] / max(cm[j].sum(), 1))
    rows = []
    for c in ("GALAXY", "QSO"):
        sel = (table["CLASS_TRUE"] == c).to_numpy()
        if not sel.any() or f"Z_{c}" not in table:
            continue
        t = table[sel]
        # the class's own regressors (GaSNet-II evaluates each ResNet_i on its class)
        m = redshift_metrics(
            t[f"Z_{c}"],
            t["Z_TRUE"],
            t[f"Z_{c}_ERR"],
            t[f"Z_{c}_ERR"] <= val_mae.get(c, np.inf),
            GOOD_THRESHOLDS[c],
        )
        rows.append({"model": f"GaSNet-II z_{c.lower()} (10 members)", "class": c, **m})
        # the full pipeline: the predicted class's redshift (stars at 0), the network's
        z_net = t["Z_NET"] if "Z_NET" in t else t["Z"]
        m = redshift_metrics(z_net, t["Z_TRUE"], good_threshold=GOOD_THRESHOLDS[c])
        rows.append({"model": "GaSNet-II pipeline (predicted class)", "class": c, **m})
        if c == "QSO" and "Z_FNET" in t:
            m = redshift_metrics(t["Z_FNET"], t["Z_TRUE"], good_threshold=GOOD_THRESHOLDS[c])
            rows.append({"model": "FNet", "class": c, **m})
    per_class = pd.DataFrame(rows)
    for r in rows:
        if r["model"].startswith("GaSNet-II z_"):
            for k in ("dz", "mae", "gf", "dv6000", "dv12000", "dv30000", "within1", "within2",
                      "within3"):  # fmt: skip
                summary[f"{k}_{r['class']}"] = r.get(k)
        if r["model"] == "FNet":
            for k in ("dz", "dv6000", "dv12000", "dv30000"):
                summary[f"fnet_{k}_QSO"] = r.get(k)
    return summary, per_class, cm


def comparison_table(summary: dict) -> pd.DataFrame:
    """Ours beside the papers' numbers, one row per metric."""
    rows = []
    for key, label in LABELS.items():
        rows.append(
            {"metric": label, "ours (emulated test)": summary.get(key)} | PAPER.get(key, {})
        )
    return pd.DataFrame(rows).set_index("metric")


def stage_metrics(cls_pred, z_pred, z_err, cls_true, z_true) -> dict:
    """Accuracy, |dv| fractions (:data:`STAGE_DV`), catastrophic fraction and Z_ERR calibration.

    Rows of one true class or several; NaN errors count as outside every k sigma.
    """
    cls_pred, cls_true = np.asarray(cls_pred).astype(str), np.asarray(cls_true).astype(str)
    z_pred, z_true = np.asarray(z_pred, float), np.asarray(z_true, float)
    out: dict = {"n": int(z_true.size)}
    if z_true.size == 0:
        return out
    right = cls_pred == cls_true
    dv = np.abs(dv_kms(z_pred, z_true))
    out["accuracy"] = float(np.mean(right))
    for t in STAGE_DV:
        out[f"dv{int(t)}"] = float(np.mean(dv < t))
    limit = np.array([CATASTROPHIC_KMS.get(c, 1000.0) for c in cls_true])
    out["catastrophic"] = float(np.mean(~right | ~(dv <= limit)))
    if z_err is not None:
        e = np.asarray(z_err, float)
        with np.errstate(invalid="ignore"):
            for k in (1, 2, 3):
                out[f"within{k}"] = float(np.mean(np.abs(z_pred - z_true) <= k * e))
        out["z_err_median"] = float(np.nanmedian(e)) if np.isfinite(e).any() else float("nan")
    return out


def stage_table(table: pd.DataFrame) -> pd.DataFrame:
    """Network alone and refined, side by side: one row per (stage, true class) and ``all``.

    ``table`` has ``CLASS_TRUE`` and ``Z_TRUE`` (or ``CLASS_REF``, ``Z_REF``); the
    network's columns (``CLASS``, ``Z_NET``, ``Z_NET_ERR``, or ``Z``, ``Z_ERR``
    without refinement) and, if refined, ``SPECTYPE``, ``Z``, ``Z_ERR``, ``ZWARN``.
    """
    truth_c = "CLASS_TRUE" if "CLASS_TRUE" in table else "CLASS_REF"
    truth_z = "Z_TRUE" if "Z_TRUE" in table else "Z_REF"
    refined = "SPECTYPE" in table
    stages = {"network": ("CLASS", "Z_NET" if refined else "Z",
                          "Z_NET_ERR" if refined else "Z_ERR")}  # fmt: skip
    if refined:
        stages["refined"] = ("SPECTYPE", "Z", "Z_ERR")
    known = table[truth_c].notna() & table[truth_z].notna()
    t = table[known.to_numpy()]
    rows = []
    for stage, (c, z, e) in stages.items():
        groups = [(cl, t[t[truth_c] == cl]) for cl in CLASSES] + [("all", t)]
        for name, part in groups:
            if part.empty:
                continue
            err = part[e] if e in part else None
            m = stage_metrics(part[c], part[z], err, part[truth_c], part[truth_z])
            if stage == "refined":
                m["zwarn0"] = float(np.mean(part["ZWARN"].to_numpy() == 0))
            rows.append({"stage": stage, "class": name, **m})
    return pd.DataFrame(rows)
