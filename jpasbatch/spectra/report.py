"""Figures and the HTML report of a spectral-model evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jpasbatch.core.html import write_html_report
from jpasbatch.physics.plots import class_colour
from jpasbatch.spectra.emulate import CLASSES
from jpasbatch.spectra.evaluate import (
    DV_THRESHOLDS,
    GOOD_THRESHOLDS,
    PAPER,
    comparison_table,
    dv_kms,
    gasnet_bias,
    metrics_table,
    stage_table,
)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def plot_confusion(cm: np.ndarray, path: Path) -> Path:
    """Row-normalised confusion matrix with counts."""
    frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(4.6, 4))
    ax = fig.subplots()
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            colour = "white" if frac[i, j] > 0.6 else "black"
            ax.text(j, i, f"{cm[i, j]}\n{frac[i, j]:.3f}", ha="center", va="center",
                    color=colour, fontsize=9)  # fmt: skip
    ax.set_xticks(range(3), CLASSES)
    ax.set_yticks(range(3), CLASSES)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (rows: true class)")
    return _save(fig, path)


def plot_redshifts(table: pd.DataFrame, path: Path) -> Path:
    """Predicted vs true redshift (ensemble mean +- sigma) and GaSNet Bias vs z, per class."""
    fig = Figure(figsize=(11, 7))
    axes = fig.subplots(2, 2)
    for col, cls in enumerate(("GALAXY", "QSO")):
        t = table[table["CLASS_TRUE"] == cls]
        if f"Z_{cls}" not in t or t.empty:
            continue
        ax = axes[0, col]
        zt, zp, s = t["Z_TRUE"], t[f"Z_{cls}"], t[f"Z_{cls}_ERR"]
        ax.errorbar(zt, zp, yerr=s, fmt=".", ms=2, lw=0.5, alpha=0.5, label="GaSNet-II 10 members")
        if cls == "QSO" and "Z_FNET" in t:
            ax.plot(zt, t["Z_FNET"], "x", ms=2, color="C3", alpha=0.5, label="FNet")
        hi = float(max(zt.max(), 0.1)) * 1.05
        ax.plot([0, hi], [0, hi], "k-", lw=0.6)
        ax.set(xlabel="true z", ylabel="predicted z", title=cls, xlim=(0, hi), ylim=(0, hi))
        ax.legend(fontsize=7)
        ax = axes[1, col]
        bias = np.clip(gasnet_bias(zp, zt), 1e-6, None)
        robust = (t[f"Z_{cls}_ERR"] <= table.attrs.get("val_mae", {}).get(cls, np.inf)).to_numpy()
        ax.semilogy(zt[robust], bias[robust], ".", ms=2, label=f"robust ({robust.mean():.2f})")
        ax.semilogy(zt[~robust], bias[~robust], ".", ms=2, color="C1", label="unstable")
        ax.axhline(GOOD_THRESHOLDS[cls], color="k", ls="--", lw=0.8, label="GF threshold")
        ax.set(xlabel="true z", ylabel="Bias = |ln((1+z_t)/(1+z_p))|")
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_dv(table: pd.DataFrame, path: Path) -> Path:
    """Cumulative |dv| accuracy of QSO redshifts, with FNet's DR16Q points."""
    t = table[table["CLASS_TRUE"] == "QSO"]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    grid = np.geomspace(100, 1e5, 200)
    for col, label in (("Z_QSO", "GaSNet-II QSO ensemble"), ("Z_FNET", "FNet")):
        if col in t and len(t):
            dv = np.abs(dv_kms(t[col], t["Z_TRUE"]))
            ax.semilogx(grid, [(dv < g).mean() for g in grid], label=label)
    ax.plot(DV_THRESHOLDS, [PAPER[f"fnet_dv{int(d)}_QSO"]["FNet DR16Q"] for d in DV_THRESHOLDS],
            "ks", label="FNet paper (DR16Q)")  # fmt: skip
    ax.set(xlabel="|dv| [km/s]", ylabel="fraction below", title="QSO redshifts", ylim=(0, 1.01))
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_calibration(table: pd.DataFrame, path: Path) -> Path:
    """Distribution of t = |z_p - z_t| / sigma_z against the Gaussian expectation."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    from scipy.special import erf

    k = np.linspace(0, 5, 200)
    ax.plot(k, erf(k / np.sqrt(2)), "k--", label="Gaussian")
    for cls in ("GALAXY", "QSO"):
        t = table[table["CLASS_TRUE"] == cls]
        if f"Z_{cls}" in t and len(t):
            tt = np.abs(t[f"Z_{cls}"] - t["Z_TRUE"]) / np.maximum(t[f"Z_{cls}_ERR"], 1e-12)
            ax.plot(k, [(tt <= kk).mean() for kk in k], color=class_colour(cls), label=cls)
    ax.set(xlabel="k", ylabel="fraction with |z_p - z_t| <= k sigma_z", title="z error calibration")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_vs_snr(table: pd.DataFrame, path: Path) -> Path:
    """Accuracy and redshift success against median S/N per pixel."""
    fig = Figure(figsize=(10, 3.8))
    a, b = fig.subplots(1, 2)
    edges = np.array([0, 1, 2, 3, 5, 8, 13, 20, 1e9])
    centre = np.r_[0.5, 1.5, 2.5, 4, 6.5, 10.5, 16.5, 30]
    snr = table["SNR"].to_numpy()
    bins = np.digitize(snr, edges) - 1
    for cls in CLASSES:
        sel = (table["CLASS_TRUE"] == cls).to_numpy()
        acc = [np.mean(table["CLASS"][sel & (bins == i)] == cls) if (sel & (bins == i)).sum() > 4
               else np.nan for i in range(len(centre))]  # fmt: skip
        a.semilogx(centre, acc, "o-", color=class_colour(cls), label=cls)
        if cls != "STAR" and f"Z_{cls}" in table:
            dv = np.abs(dv_kms(table[f"Z_{cls}"], table["Z_TRUE"]))
            ok = [np.mean(dv[sel & (bins == i)] < 6000) if (sel & (bins == i)).sum() > 4
                  else np.nan for i in range(len(centre))]  # fmt: skip
            b.semilogx(centre, ok, "o-", color=class_colour(cls), label=cls)
    a.set(xlabel="median S/N per pixel", ylabel="recall", title="classification", ylim=(0, 1.02))
    b.set(xlabel="median S/N per pixel", ylabel="|dv| < 6000 km/s", title="redshift (own class)",
          ylim=(0, 1.02))  # fmt: skip
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    return _save(fig, path)


def breakdown(table: pd.DataFrame, column: str, val_mae: dict | None = None) -> pd.DataFrame:
    """The headline metrics per value of ``column`` (e.g. template FAMILY, SURVEY coverage)."""
    rows = []
    for value, part in table.groupby(column):
        s, _, _ = metrics_table(part, val_mae)
        keep = ["n", "accuracy", "dz_GALAXY", "gf_GALAXY", "dz_QSO", "dv6000_QSO",
                "fnet_dv6000_QSO", "within3_GALAXY", "within3_QSO"]  # fmt: skip
        rows.append({column: value} | {k: s.get(k) for k in keep})
    return pd.DataFrame(rows)


def evaluation_report(table: pd.DataFrame, out: str | Path, val_mae: dict | None = None,
                      title: str = "Spectral classification and redshifts") -> dict:  # fmt: skip
    """Metrics, figures, ``metrics.json``, ``comparison.csv`` and ``report.html`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table.attrs["val_mae"] = val_mae or {}
    summary, per_class, cm = metrics_table(table, val_mae)
    comparison = comparison_table(summary)
    comparison.to_csv(out / "comparison.csv")
    per_class.to_csv(out / "redshift_metrics.csv", index=False)
    (out / "metrics.json").write_text(
        json.dumps({"summary": summary, "confusion": cm.tolist(), "val_mae": val_mae}, indent=2)
    )
    extra = []
    stages = stage_table(table)
    stages.to_csv(out / "network_vs_refined.csv", index=False)
    first = (
        [("Network alone and refined by the template fit", stages)] if "SPECTYPE" in table else []
    )
    for column in ("FAMILY", "SURVEY", "SET"):
        if column in table:
            b = breakdown(table, column, val_mae)
            b.to_csv(out / f"by_{column.lower()}.csv", index=False)
            extra.append((f"By {column.lower()}", b))
    figs = {
        "confusion": plot_confusion(cm, out / "confusion.png"),
        "redshifts": plot_redshifts(table, out / "redshifts.png"),
        "dv": plot_dv(table, out / "dv_accuracy.png"),
        "calibration": plot_calibration(table, out / "z_error_calibration.png"),
        "snr": plot_vs_snr(table, out / "vs_snr.png"),
    }
    write_html_report(
        out,
        title,
        [
            *first,
            ("Ours beside the papers", comparison),
            ("Classification", [pd.DataFrame([summary]).filter(like="recall").assign(
                accuracy=summary["accuracy"], n=summary["n"]), figs["confusion"]]),
            ("Redshifts per class", [per_class, figs["redshifts"]]),
            ("|dv| accuracy (QSOs)", figs["dv"]),
            ("Redshift error calibration", figs["calibration"]),
            ("Against S/N", figs["snr"]),
            *extra,
        ],
    )  # fmt: skip
    return {"summary": summary, "comparison": comparison, "per_class": per_class, "cm": cm,
            "stages": stages}  # fmt: skip
