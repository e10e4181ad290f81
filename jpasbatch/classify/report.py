"""Figures, tables and one self-contained HTML page describing a classifier.

Figures are built on ``matplotlib.figure.Figure`` directly rather than pyplot,
like :mod:`jpasbatch.physics.plots`: no global backend state, so reports can be written
from Dask or Ray workers and on machines without a display. The numbers all
come from :mod:`jpasbatch.core.metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jpasbatch.core import metrics
from jpasbatch.core.html import write_html_report
from jpasbatch.physics.plots import OBSERVED_R, _save, class_colour

_MODEL_STYLES = ("-", "--", ":", "-.")


def _names(k: int) -> tuple[str, ...]:
    return metrics._class_names(k)


def _colour(c: int, k: int = len(metrics.CLASSES)) -> str:
    """The shared colour (:data:`jpasbatch.physics.plots.CLASS_COLOURS`) of class ``c`` of ``k``."""
    return class_colour(_names(k)[c], c)


# --------------------------------------------------------------------------- figures


def plot_confusion(cm: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix, each cell annotated with count and fraction.

    Colours show the fraction of each true class (row) assigned to each
    predicted class, so rare classes are as readable as common ones.
    """
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    names = _names(k)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(cm.sum(axis=1, keepdims=True) > 0, cm / cm.sum(axis=1, keepdims=True), 0)
    fig = Figure(figsize=(5.5, 4.8))
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    integral = np.allclose(cm, np.round(cm))
    for i in range(k):
        for j in range(k):
            count = f"{cm[i, j]:.0f}" if integral else f"{cm[i, j]:.3g}"
            colour = "white" if frac[i, j] > 0.6 else "black"
            ax.text(
                j,
                i,
                f"{count}\n{frac[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
            )
    ax.set_xticks(range(k), names, rotation=30, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "confusion matrix (row-normalised)", fontsize=10)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    return _save(fig, path)


def plot_reliability(
    probs: np.ndarray,
    y_true: np.ndarray,
    path: str | Path,
    n_bins: int = 10,
    sample_weight: np.ndarray | None = None,
) -> Path:
    """One-vs-rest reliability diagram per class, its ECE in the panel title.

    Points are the observed fraction of the class against the mean predicted
    probability in each bin. Grey bars along the bottom show how many objects
    each bin holds, on a logarithmic scale relative to the fullest bin (a
    quarter of the panel height), since a large gap in a near-empty bin matters
    little. They share the panel's axes rather than a twin axis: a log-scaled
    twin axis per panel made the figure several times slower to lay out.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true)
    k = probs.shape[1]
    names = _names(k)
    ece = metrics.expected_calibration_error(probs, y, n_bins, sample_weight=sample_weight)
    fig = Figure(figsize=(3.2 * k, 3.4))
    axes = fig.subplots(1, k, squeeze=False)[0]
    for c, ax in enumerate(axes):
        curve = metrics.reliability_curve(probs[:, c], y == c, n_bins, sample_weight)
        rel = np.log10(1 + curve.counts) / max(np.log10(1 + curve.counts.max(initial=0)), 1e-12)
        ax.bar(curve.centres, 0.25 * rel, width=1 / n_bins, color="0.85", zorder=0)
        ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1)
        ax.plot(curve.mean_predicted, curve.observed_fraction, "o-", color=_colour(c, k), ms=4)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"predicted P({names[c]})")
        ax.set_title(f"{names[c]}  ECE = {ece[f'ECE_{names[c]}']:.3f}", fontsize=9)
    axes[0].set_ylabel("observed fraction")
    return _save(fig, path)


def _short(mag_label: str) -> str:
    """``"observed r (rSDSS, mag)"`` -> ``"observed r"``, for titles and headings."""
    return mag_label.split(" (")[0]


def _centres(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    rows = table[table["bin"] != "all"]
    return rows, 0.5 * (rows["lo"].to_numpy(float) + rows["hi"].to_numpy(float))


def plot_f1_vs_mag(
    tables: Mapping[str, pd.DataFrame],
    path: str | Path,
    paper: Mapping[str, Sequence[float]] | None = None,
    paper_bins: Sequence[tuple[float, float]] = metrics.MAGNITUDE_BINS,
    *,
    mag_label: str = OBSERVED_R,
) -> Path:
    """F1 per class against magnitude: one line per class (colour) and model (style).

    Each line has a shaded band: its 95% interval per bin, ``F1_LO_<C>`` to
    ``F1_HI_<C>`` of the table (the range of F1 over the Wilson score intervals
    of purity and completeness, see :func:`metrics.f1_interval`). Bins without
    objects, or without a true member of the class, hold NaN and are not drawn
    (a gap in the line and band, never a 0).

    Parameters
    ----------
    tables : mapping of model name to DataFrame
        Tables from :func:`metrics.evaluate`, usually on :func:`metrics.sliding_bins`;
        the ``"all"`` row is skipped and each bin is drawn at its centre.
    path : str or Path
        PNG to write.
    paper : mapping of class name to F1 per bin, optional
        Published F1 values (e.g. miniJPAS QSO III), drawn as markers at the
        centres of ``paper_bins`` with horizontal bars spanning each bin.
    paper_bins : sequence of (lo, hi)
        The bins of ``paper``; defaults to :data:`metrics.MAGNITUDE_BINS`.
    mag_label : str
        The x-axis label, naming which r the tables were binned by:
        :data:`jpasbatch.physics.plots.OBSERVED_R` (default) or
        :data:`jpasbatch.physics.plots.TRUE_R`.
    """
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    names = metrics.CLASSES
    for m, (model, table) in enumerate(tables.items()):
        rows, x = _centres(table)
        style = _MODEL_STYLES[m % len(_MODEL_STYLES)]
        for name in names:
            col = f"F1_{name}"
            if col in rows:
                label = f"{name} ({model})" if len(tables) > 1 else name
                f1 = rows[col].to_numpy(float)
                colour = class_colour(name)
                ax.plot(x, f1, style, color=colour, label=label, lw=1.4)
                if f"F1_LO_{name}" in rows and f"F1_HI_{name}" in rows:
                    lo = rows[f"F1_LO_{name}"].to_numpy(float)
                    hi = rows[f"F1_HI_{name}"].to_numpy(float)
                    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(f1)
                    ax.fill_between(x, lo, hi, where=ok, color=colour, alpha=0.15, lw=0,
                                    interpolate=False, label=f"_band {label}")  # fmt: skip
    if paper:
        lo = np.array([b[0] for b in paper_bins], dtype=float)
        hi = np.array([b[1] for b in paper_bins], dtype=float)
        for name in names:
            if name in paper:
                f1 = np.asarray(paper[name], dtype=float)
                ax.errorbar(
                    0.5 * (lo + hi)[: len(f1)],
                    f1,
                    xerr=0.5 * (hi - lo)[: len(f1)],
                    fmt="s",
                    color=class_colour(name),
                    mfc="white",
                    ms=6,
                    capsize=2,
                    label=f"{name} (paper)",
                )
    ax.set_xlabel(mag_label)
    ax.set_ylabel("F1 (band: 95% interval)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("F1 score against magnitude", fontsize=10)
    return _save(fig, path)


def plot_entropy_vs_snr(
    entropy: np.ndarray,
    snr: np.ndarray,
    y_true: np.ndarray,
    path: str | Path,
    n_bins: int = 12,
    min_count: int = 5,
) -> Path:
    """Median entropy of the probabilities in logarithmic S/N bins, per true class.

    Objects with non-finite or non-positive S/N are left out (no place on a log
    axis); bins with fewer than ``min_count`` objects of a class are not drawn,
    since a median of a handful of objects is noise.
    """
    h = np.asarray(entropy, dtype=np.float64)
    s = np.asarray(snr, dtype=np.float64)
    y = np.asarray(y_true)
    ok = np.isfinite(s) & (s > 0) & np.isfinite(h)
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    if ok.any():
        lo, hi = np.log10(s[ok].min()), np.log10(s[ok].max())
        edges = np.logspace(lo, hi if hi > lo else lo + 1, n_bins + 1)
        idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)
        centres = np.sqrt(edges[:-1] * edges[1:])
        for c, name in enumerate(metrics.CLASSES):
            med = np.full(n_bins, np.nan)
            for b in range(n_bins):
                sel = ok & (y == c) & (idx == b)
                if sel.sum() >= min_count:
                    med[b] = np.median(h[sel])
            if np.isfinite(med).any():
                ax.plot(centres, med, "o-", color=class_colour(name), ms=3, label=name)
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("S/N (r band)")
    ax.set_ylabel("median entropy [bits]")
    ax.set_ylim(0, np.log2(len(metrics.CLASSES)) * 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.set_title("classification entropy against signal-to-noise", fontsize=10)
    return _save(fig, path)


def plot_roc(
    probs: np.ndarray,
    y_true: np.ndarray,
    path: str | Path,
    sample_weight: np.ndarray | None = None,
) -> Path:
    """One-vs-rest ROC curve per class, AUC in the legend."""
    roc = metrics.roc_auc(probs, y_true, sample_weight)
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1)
    for c, name in enumerate(_names(len(roc.auc))):
        if np.isfinite(roc.auc[c]):
            ax.plot(
                roc.fpr[c],
                roc.tpr[c],
                color=_colour(c, len(roc.auc)),
                lw=1.4,
                label=f"{name} AUC = {roc.auc[c]:.3f}",
            )
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (completeness)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("one-vs-rest ROC", fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------- all of it


def classification_report(
    out_dir: str | Path,
    probs: np.ndarray,
    y_true: np.ndarray,
    mag: np.ndarray,
    snr: np.ndarray | None = None,
    title: str = "jpasbatch classification report",
    extra_sections: Sequence[tuple[str, Any]] = (),
    *,
    paper: Mapping[str, Sequence[float]] | None = None,
    sample_weight: np.ndarray | None = None,
    mag_label: str = OBSERVED_R,
) -> dict[str, Any]:
    """Metrics tables, figures and an HTML page for one classifier on one test set.

    Writes into ``out_dir``: ``metrics.csv`` (:func:`metrics.evaluate` on
    :data:`metrics.MAGNITUDE_BINS`), ``metrics_sliding.csv`` (on
    :func:`metrics.sliding_bins`), ``metrics.json`` (:func:`metrics.summary`),
    ``confusion.png``, ``reliability.png``, ``roc.png``, ``f1_vs_mag.png``,
    ``entropy_vs_snr.png`` (only with ``snr``) and ``report.html``.

    Parameters
    ----------
    out_dir : str or Path
    probs : ndarray, shape (N, K)
    y_true : ndarray of int, shape (N,)
    mag : ndarray, shape (N,)
        r magnitude for the binned tables.
    mag_label : str
        Which r ``mag`` is, for axes and headings: :data:`jpasbatch.physics.plots.OBSERVED_R`
        (default; the survey's measurement) or :data:`jpasbatch.physics.plots.TRUE_R`
        (a simulation's truth, e.g. the mocks' ``MAG_R``).
    snr : ndarray, shape (N,), optional
        S/N for the entropy figure.
    title : str
    extra_sections : sequence of (heading, content)
        Appended to the HTML page (see :func:`jpasbatch.core.html.write_html_report`).
    paper : mapping of class name to F1 per fixed bin, optional
        Published values overlaid on the F1-magnitude figure.
    sample_weight : ndarray, shape (N,), optional
        Weights for every metric.

    Returns
    -------
    dict
        ``report``, ``metrics_csv``, ``metrics_sliding_csv``, ``metrics_json``
        (Paths), ``figures`` (name to Path), ``headline`` (the summary dict),
        ``table`` and ``sliding`` (the two DataFrames).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true)
    w = sample_weight
    table = metrics.evaluate(probs, y, mag, metrics.MAGNITUDE_BINS, sample_weight=w)
    sliding = metrics.evaluate(probs, y, mag, metrics.sliding_bins(), sample_weight=w)
    headline = metrics.summary(probs, y, sample_weight=w)
    paths = {
        "metrics_csv": out / "metrics.csv",
        "metrics_sliding_csv": out / "metrics_sliding.csv",
        "metrics_json": out / "metrics.json",
    }
    table.to_csv(paths["metrics_csv"], index=False)
    sliding.to_csv(paths["metrics_sliding_csv"], index=False)
    paths["metrics_json"].write_text(json.dumps(headline, indent=2) + "\n")

    cm = metrics.confusion_matrix(y, probs.argmax(axis=1), probs.shape[1], w)
    figures = {
        "confusion": plot_confusion(cm, out / "confusion.png", "confusion matrix (all objects)"),
        "reliability": plot_reliability(probs, y, out / "reliability.png", sample_weight=w),
        "roc": plot_roc(probs, y, out / "roc.png", sample_weight=w),
        "f1_vs_mag": plot_f1_vs_mag(
            {"model": sliding}, out / "f1_vs_mag.png", paper=paper, mag_label=mag_label
        ),
    }
    mag = np.asarray(mag, dtype=np.float64)
    r = _short(mag_label)
    per_bin = []
    for lo, hi in metrics.MAGNITUDE_BINS:
        sel = (mag >= lo) & (mag < hi)
        if sel.any():
            w_bin = None if w is None else np.asarray(w)[sel]
            cm_bin = metrics.confusion_matrix(y[sel], probs[sel].argmax(1), probs.shape[1], w_bin)
            name = f"confusion_r{lo:g}-{hi:g}"
            figures[name] = plot_confusion(cm_bin, out / f"{name}.png",
                                           f"confusion matrix, {lo:g} <= {r} < {hi:g}")  # fmt: skip
            per_bin.append(figures[name])
    if snr is not None:
        figures["entropy_vs_snr"] = plot_entropy_vs_snr(
            metrics.entropy(probs), snr, y, out / "entropy_vs_snr.png"
        )

    head = pd.DataFrame([{"n": len(y), **headline}])
    files = ", ".join(
        f'<a href="{p.name}">{p.name}</a>'
        for p in (paths["metrics_csv"], paths["metrics_sliding_csv"], paths["metrics_json"])
    )
    sections: list[tuple[str, Any]] = [
        ("Headline", head),
        (f"Metrics in {r} bins", table),
        ("Confusion matrix", figures["confusion"]),
        (f"Confusion matrices per {r} bin", per_bin),
        ("Reliability (one vs rest)", figures["reliability"]),
        ("ROC (one vs rest)", figures["roc"]),
        (f"F1 against {r} (sliding 1-mag windows, 95% bands)", figures["f1_vs_mag"]),
    ]
    if "entropy_vs_snr" in figures:
        sections.append(("Entropy against S/N", figures["entropy_vs_snr"]))
    sections.append(("Files", f"<p>{files}</p>"))
    sections.extend(extra_sections)
    report = write_html_report(out, title, sections)
    return {
        "report": report,
        **paths,
        "figures": figures,
        "headline": headline,
        "table": table,
        "sliding": sliding,
    }
