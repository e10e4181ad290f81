"""Metrics of the foundation model, as OJALA reports them (Sects. 4.1-4.4).

* **Classification**: balanced purity / completeness / F1 from the
  row-normalised confusion matrix (Eqs. 4-7; the confusion-matrix and balanced
  purity kernels are :mod:`jpasbatch.core.metrics`'), in sliding i-band
  windows (centres every 0.3 mag, half-width 0.3, as OJALA's Fig. 3), for the
  three OJALA classes (QSO = QSO_LOW + QSO_HIGH) and for our four; the weighted
  F1 gives every class the same weight (inverse-frequency weights).
* **Photo-z**: ``dz = (z_phot - z_spec) / (1 + z_spec)``; bias = median(dz),
  sigma_NMAD = 1.48 median|dz - median(dz)|, outliers |dz| > 0.15; against i
  magnitude and against redshift, for galaxies and QSOs.
* **Physical parameters**: bias and sigma_NMAD of ``log10 pred - log10 true``
  (dex) for the equivalent widths of galaxies (Halpha and [NII] at z < 0.36,
  Hbeta and [OIII] at z < 0.8, OJALA's cuts), and of ``pred - true`` in K for
  the stars' Teff.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.core.metrics import balanced_purity, confusion_matrix, purity_completeness
from jpasbatch.physics.filters import jpas
from jpasbatch.physics.photometry import flux_to_ab

#: OJALA's three classes and how ours map onto them.
OJALA_CLASSES = ("STAR", "GALAXY", "QSO")
#: Redshift ranges where each line is inside the J-PAS filters (OJALA Sect. 4.4).
LINE_Z_MAX = {"EW_HALPHA": 0.36, "EW_NII_6584": 0.36, "EW_HBETA": 0.8, "EW_OIII_5007": 0.8}
#: Smallest class count for a classification point in a magnitude window.
MIN_PER_CLASS = 15


def i_magnitude(table: pa.Table) -> np.ndarray:
    """Observed iSDSS AB magnitude (NaN where the flux is not positive)."""
    f = table["FLUX_iSDSS"].to_numpy(zero_copy_only=False).astype(float)
    pivot = jpas()["iSDSS"].pivot_wavelength
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(f > 0, flux_to_ab(np.where(f > 0, f, 1.0), pivot), np.nan)


def photoz_stats(z_phot: np.ndarray, z_spec: np.ndarray) -> dict[str, float]:
    """``n``, ``bias``, ``nmad``, ``outliers`` of dz/(1+z) (NaN when empty)."""
    ok = np.isfinite(z_phot) & np.isfinite(z_spec)
    dz = (z_phot[ok] - z_spec[ok]) / (1 + z_spec[ok])
    outliers = float(np.mean(np.abs(dz) > 0.15)) if dz.size else np.nan
    return residual_stats(dz) | {"outliers": outliers}


def residual_stats(residual: np.ndarray) -> dict[str, float]:
    """``n``, ``bias`` (median) and ``nmad`` of residuals."""
    r = residual[np.isfinite(residual)]
    if r.size == 0:
        return {"n": 0, "bias": np.nan, "nmad": np.nan}
    med = float(np.median(r))
    return {"n": int(r.size), "bias": med, "nmad": float(1.48 * np.median(np.abs(r - med)))}


def balanced_scores(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Balanced purity, completeness and F1 per class, and the equal-weight mean F1."""
    cm = confusion_matrix(y, pred, n_classes=k)
    purity = balanced_purity(cm)
    _, completeness = purity_completeness(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(
            purity + completeness > 0, 2 * purity * completeness / (purity + completeness), 0.0
        )
    present = cm.sum(axis=1) > 0
    return {
        "purity": purity,
        "completeness": completeness,
        "f1": f1,
        "weighted_f1": float(f1[present].mean()) if present.any() else np.nan,
        "support": cm.sum(axis=1),
    }


def to_ojala_classes(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Four-class probabilities and labels as STAR / GALAXY / QSO."""
    p3 = np.c_[probs[:, 0], probs[:, 1], probs[:, 2] + probs[:, 3]]
    return p3, np.minimum(y, 2)


def sliding_windows(lo: float, hi: float, step: float = 0.3, half: float = 0.3):
    """OJALA's windows: centres every ``step`` from ``lo`` to ``hi``, half-width ``half``."""
    return [(c - half, c, c + half) for c in np.arange(lo, hi + 1e-9, step)]


def classification_vs_mag(
    probs: np.ndarray, y: np.ndarray, mag: np.ndarray, names: tuple[str, ...] = OJALA_CLASSES
) -> pd.DataFrame:
    """Balanced P / C / F1 per class and weighted F1 in sliding i windows.

    A class's values are NaN in windows where it has fewer than
    :data:`MIN_PER_CLASS` objects; the weighted F1 averages the classes shown.
    """
    rows = []
    k = len(names)
    for lo, c, hi in sliding_windows(16.0, 24.0):
        sel = (mag >= lo) & (mag < hi)
        if not sel.any():
            continue
        s = balanced_scores(y[sel], probs[sel].argmax(1), k)
        enough = s["support"] >= MIN_PER_CLASS
        row = {"i": c, "n": int(sel.sum())}
        for j, name in enumerate(names):
            for key in ("purity", "completeness", "f1"):
                row[f"{key}_{name}"] = float(s[key][j]) if enough[j] else np.nan
        row["weighted_f1"] = float(s["f1"][enough].mean()) if enough.sum() >= 2 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def photoz_binned(z_phot, z_spec, x, edges) -> pd.DataFrame:
    """:func:`photoz_stats` in bins of ``x`` (i magnitude or redshift) given by ``edges``."""
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = (x >= lo) & (x < hi)
        rows.append(
            {"lo": lo, "hi": hi, "x": (lo + hi) / 2, **photoz_stats(z_phot[sel], z_spec[sel])}
        )
    return pd.DataFrame(rows)


def evaluate(cols: dict[str, np.ndarray], table: pa.Table) -> dict:
    """Every metric of predictions ``cols`` on a labelled (``MOCK_EXT``) table.

    Returns
    -------
    dict
        ``class3`` / ``class4`` (classification vs i), ``class3_all`` /
        ``class4_all`` (whole set), ``photoz`` (per population: ``all``,
        ``vs_mag``, ``vs_z``), ``params`` (per parameter: stats).
    """
    y = np.array([CLASSES.index(c) for c in table["CLASS"].to_pylist()])
    probs = np.stack([cols[f"P_{c}"] for c in CLASSES], 1).astype(float)
    ok = np.isfinite(probs).all(1)
    mag = i_magnitude(table)
    p3, y3 = to_ojala_classes(probs, y)
    out: dict = {
        "class4": classification_vs_mag(probs[ok], y[ok], mag[ok], CLASSES),
        "class3": classification_vs_mag(p3[ok], y3[ok], mag[ok]),
    }
    for key, (p, yy, names) in {
        "class4_all": (probs, y, CLASSES),
        "class3_all": (p3, y3, OJALA_CLASSES),
    }.items():
        s = balanced_scores(yy[ok], p[ok].argmax(1), len(names))
        out[key] = {"weighted_f1": s["weighted_f1"]} | {
            f"{m}_{n}": float(s[m][j])
            for j, n in enumerate(names)
            for m in ("purity", "completeness", "f1")
        }
    z = table["Z"].to_numpy(zero_copy_only=False).astype(float)
    zp = cols["Z_PHOT"].astype(float)
    out["photoz"] = {}
    for pop, sel in (("GALAXY", y == 1), ("QSO", y >= 2)):
        zmax = 1.6 if pop == "GALAXY" else 4.5
        out["photoz"][pop] = {
            "all": photoz_stats(zp[sel], z[sel]),
            "i<21": photoz_stats(zp[sel & (mag < 21)], z[sel & (mag < 21)]),
            "vs_mag": photoz_binned(zp[sel], z[sel], mag[sel], np.arange(16, 24.01, 1.0)),
            "vs_z": photoz_binned(zp[sel], z[sel], z[sel], np.linspace(0, zmax, 9)),
        }
    out["params"] = {}
    names = table.column_names
    if "TEFF" in names and "TEFF" in cols:
        t = table["TEFF"].to_numpy(zero_copy_only=False).astype(float)
        sel = (y == 0) & np.isfinite(t)
        out["params"]["TEFF"] = residual_stats(cols["TEFF"][sel] - t[sel]) | {"unit": "K"}
    for name, zmax in LINE_Z_MAX.items():
        if name not in names or name not in cols:
            continue
        true = table[name].to_numpy(zero_copy_only=False).astype(float)
        sel = (y == 1) & np.isfinite(true) & (z < zmax)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log10(np.maximum(cols[name][sel], 0.1)) - np.log10(np.maximum(true[sel], 0.1))
        out["params"][name] = residual_stats(r) | {"unit": "dex", "z_max": zmax}
    return out
