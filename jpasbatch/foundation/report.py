"""The evaluation report: every model x test set x context, figures, tables and HTML.

``evaluation_report`` predicts Test-Synth and Test-Real (``MOCK_EXT`` tables
from :func:`jpasbatch.mocks.testsets.build_test_sets`) with each model under
each context, computes :func:`jpasbatch.foundation.evaluate.evaluate`, runs the
fine-tuning experiment when the emulator's truth is given, and writes
``metrics.json``, the figures and ``report.html`` (OJALA's reported numbers
beside ours) into ``out``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.foundation.evaluate import OJALA_CLASSES, evaluate, residual_stats
from jpasbatch.foundation.finetune import finetune_head
from jpasbatch.foundation.predict import FoundationPredictor

#: OJALA's ablation contexts (Sect. 4.1, Fig. 3): all; T1 + T2 + BB + morphology; T1 + BB + M.
CONTEXTS = {"all": "all", "T1+T2+BB+M": "T1+T2+broad+morph", "T1+BB+M": "T1+broad+morph"}
#: OJALA's reported numbers (DESIGN.md item 3 and the paper's Sects. 4.1-4.4, Test-Real).
OJALA = {
    "weighted F1, i < 21": "~0.9",
    "weighted F1, T1 + BB + M, i = 21": "~0.8",
    "galaxy sigma_NMAD, i < 21": "< 0.01",
    "galaxy outliers, i < 21": "< 5%",
    "QSO sigma_NMAD at z ~ 3.5": "~0.006",
    "log EW Halpha (bias / sigma_NMAD)": "0.035 / 0.160 dex",
    "log EW Hbeta": "0.031 / 0.192 dex",
    "log EW [NII]": "0.042 / 0.186 dex",
    "log EW [OIII]": "0.021 / 0.291 dex",
    "inference": "~370 objects/s (45 min per million, consumer CPU)",
}


def _fig_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def _plot_classification(results: dict, models: list[str], suffix: str = ""):
    from matplotlib.figure import Figure

    from jpasbatch.physics.plots import CLASS_COLOURS

    fig = Figure(figsize=(13, 3.3 * len(models)))
    axes = fig.subplots(len(models), 4, squeeze=False)
    for r, model in enumerate(models):
        for ds, style in ((f"test_real{suffix}", "-"), (f"test_synth{suffix}", ":")):
            t = results[model][ds]["all"]["class3"]
            for c, key in enumerate(("purity", "completeness", "f1")):
                for name in OJALA_CLASSES:
                    axes[r, c].plot(t["i"], t[f"{key}_{name}"], style, color=CLASS_COLOURS[name],
                                    label=f"{name} ({ds[5:]})")  # fmt: skip
                axes[r, c].set(title=f"{model}: balanced {key}", xlabel="i", ylim=(0, 1.02))
            for ctx in CONTEXTS:
                if ds.startswith("test_real") and ctx in results[model][ds]:
                    t = results[model][ds][ctx]["class3"]
                    axes[r, 3].plot(t["i"], t["weighted_f1"], label=ctx)
        axes[r, 3].set(title=f"{model}: weighted F1 (Test-Real)", xlabel="i", ylim=(0, 1.02))
        axes[r, 0].legend(fontsize=6)
        axes[r, 3].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plot_photoz(results: dict, models: list[str], suffix: str = ""):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8))
    axes = fig.subplots(3, 4)
    cols = [("GALAXY", "vs_mag"), ("GALAXY", "vs_z"), ("QSO", "vs_mag"), ("QSO", "vs_z")]
    for m, model in enumerate(models):
        for ds, style in ((f"test_real{suffix}", "-"), (f"test_synth{suffix}", ":")):
            for c, (pop, key) in enumerate(cols):
                t = results[model][ds]["all"]["photoz"][pop][key]
                t = t[t["n"] >= 10]
                for r, stat in enumerate(("bias", "nmad", "outliers")):
                    axes[r, c].plot(t["x"], t[stat], style, color=f"C{m}", marker=".",
                                    label=f"{model} ({ds[5:]})")  # fmt: skip
                    axes[r, c].set(ylabel=stat, xlabel="i" if key == "vs_mag" else "z_spec")
                    axes[0, c].set_title(f"{pop} {key.replace('_', ' ')}")
    axes[1, 0].axhline(0.01, color="grey", lw=0.5)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def _table_html(df: pd.DataFrame) -> str:
    """The table in a box that scrolls sideways, so a wide table never overflows the page."""
    table = df.to_html(float_format=lambda v: f"{v:.3g}", na_rep="-", border=0)
    return f'<div class="scroll">{table}</div>'


def precision_agreement(predictor: FoundationPredictor, table) -> dict:
    """bfloat16 against float32 inference on ``table`` with every band as context.

    The fast path's metrics beside the exact one's: argmax-class agreement, the
    largest redshift difference, weighted F1 (3 classes) and the galaxies'
    photo-z sigma_NMAD in each precision.
    """
    runs = {dt: predictor.predict(table, dtype=dt)[0] for dt in ("float32", "bfloat16")}
    scores = {dt: evaluate(cols, table) for dt, cols in runs.items()}
    label = {dt: np.stack([c[f"P_{k}"] for k in CLASSES], 1).argmax(1) for dt, c in runs.items()}
    dz = np.abs(runs["float32"]["Z_PHOT"] - runs["bfloat16"]["Z_PHOT"])
    out = {
        "n": table.num_rows,
        "class_agreement": float(np.mean(label["float32"] == label["bfloat16"])),
        "max_abs_dz": float(np.nanmax(dz)),
    }
    for dt, r in scores.items():
        out[f"weighted_f1_{dt}"] = r["class3_all"]["weighted_f1"]
        out[f"galaxy_nmad_{dt}"] = r["photoz"]["GALAXY"]["all"]["nmad"]
    return out


def finetune_experiment(
    predictor: FoundationPredictor, table, truth: pd.DataFrame, seed: int = 0
) -> dict:
    """Galaxy half-light radius (never a training token) from frozen embeddings of Test-Real.

    Half of the galaxies train the head, the other half measure it; the
    baseline predicts the training median for every galaxy.
    """
    _cols, arrays = predictor.predict(table)
    ids = table["OBJECT_ID"].to_numpy()
    size = truth.set_index("OBJECT_ID")["HALF_LIGHT_ARCSEC"].reindex(ids).to_numpy(float)
    gal = (table["CLASS"].to_numpy(zero_copy_only=False) == "GALAXY") & (size > 0)
    y = np.log10(np.where(gal, size, np.nan))
    emb = arrays["EMBEDDING"]
    idx = np.flatnonzero(gal & np.isfinite(emb).all(1))
    rng = np.random.default_rng(seed)
    rng.shuffle(idx)
    half = len(idx) // 2
    train, test = idx[:half], idx[half:]
    head = finetune_head(emb[train], y[train], seed=seed)
    mu, sigma = head.predict(emb[test])
    r = mu - y[test]
    base = np.median(y[train]) - y[test]

    return {
        "label": "log10 HALF_LIGHT_ARCSEC (galaxies)",
        "n_train": len(train),
        "n_test": len(test),
        "nmad": residual_stats(r)["nmad"],
        "bias": float(np.median(r)),
        "baseline_nmad": residual_stats(base)["nmad"],
        "pull_std": float(np.std(r / sigma)),
        "pearson_r": float(np.corrcoef(mu, y[test])[0, 1]),
    }


def evaluation_report(
    models: dict[str, str | Path],
    test_sets: dict[str, str | Path],
    out: str | Path,
    *,
    truth: str | Path | None = None,
    contexts: dict[str, str] = CONTEXTS,
    batch_size: int | None = None,
) -> dict:
    """Write the report into ``out``; returns the headline metrics.

    Parameters
    ----------
    models
        Label -> saved model (``model.json``, or its run folder).
    test_sets
        ``test_real`` / ``test_synth`` -> ``MOCK_EXT`` Parquet files.
    out
        Output folder.
    truth
        The emulator's ``truth/`` folder (for the fine-tuning experiment).
    contexts
        Label -> context of :meth:`FoundationPredictor.predict`.
    batch_size
        Objects per forward pass (default: the predictor's, per device).
    """
    from tqdm import tqdm

    from jpasbatch.core.progress import disable as progress_disable

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = {k: pq.read_table(v) for k, v in test_sets.items()}
    results: dict = {}
    predictors = {m: FoundationPredictor.load(p) for m, p in models.items()}
    jobs = [(m, d, c) for m in models for d in tables for c in contexts]
    for m, d, c in tqdm(jobs, desc="predicting", unit="set", disable=progress_disable()):
        cols, _ = predictors[m].predict(tables[d], contexts[c], batch_size=batch_size)
        results.setdefault(m, {}).setdefault(d, {})[c] = evaluate(cols, tables[d])
    finetune = {}
    if truth is not None and "test_real" in tables:
        truth_df = pd.read_parquet(truth, columns=["OBJECT_ID", "HALF_LIGHT_ARCSEC"])
        for m, pred in predictors.items():
            finetune[m] = finetune_experiment(pred, tables["test_real"], truth_df)
    precision = {}
    if "test_real" in tables:
        for m, pred in predictors.items():
            precision[m] = precision_agreement(pred, tables["test_real"])
    headline = _headline(results, finetune)
    extra = {"finetune": finetune, "precision": precision}
    (out / "metrics.json").write_text(json.dumps(_jsonable(results) | extra, indent=1))
    figs = {}
    for suffix in ("", "_deep"):
        if f"test_real{suffix}" in tables and f"test_synth{suffix}" in tables:
            figs[f"classification{suffix}"] = _plot_classification(results, list(models), suffix)
            figs[f"photoz{suffix}"] = _plot_photoz(results, list(models), suffix)
    for name, fig in figs.items():
        fig.savefig(out / f"{name}.png", dpi=90)
    meta = {m: p.meta for m, p in predictors.items()}
    (out / "report.html").write_text(
        _html(results, headline, finetune, precision, figs, meta, tables)
    )
    headline.to_csv(out / "headline.csv")
    (out / "summary.md").write_text(summary_markdown(results, finetune, precision))
    return {"headline": headline, "finetune": finetune, "precision": precision}


def _f(v, fmt=".3f") -> str:
    return "-" if v is None or not np.isfinite(v) else format(v, fmt)


def summary_markdown(results: dict, finetune: dict, precision: dict | None = None) -> str:
    """The headline tables as Markdown, OJALA's numbers in the first row of each."""
    lines = ["### Classification (weighted F1, OJALA's 3 classes, equal class weights)", ""]
    lines += [
        "| model | test set | all bands | all, i = 21 | T1+T2+BB+M, i = 21 | T1+BB+M, i = 21 |",
        "|---|---|---|---|---|---|",
        "| OJALA | Test-Real | - | ~0.9 | ~0.9 | ~0.8 |",
    ]

    def at21(r):
        t = r["class3"]
        v = t[(t["i"] > 20.8) & (t["i"] < 21.2)]["weighted_f1"]
        return float(v.mean()) if len(v) else np.nan

    for m, per_ds in results.items():
        for d, r in per_ds.items():
            row = [m, d, _f(r["all"]["class3_all"]["weighted_f1"]), _f(at21(r["all"]))]
            row += [_f(at21(r[c])) if c in r else "-" for c in ("T1+T2+BB+M", "T1+BB+M")]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "### Photometric redshifts (all bands)", ""]
    lines += [
        "| model | test set | galaxies i < 21: bias / sigma_NMAD / outliers | "
        "galaxies all | QSOs all | QSOs i < 21 |",
        "|---|---|---|---|---|---|",
        "| OJALA | Test-Real | ~0 / < 0.01 / < 5% | - | - | (0.006 at z ~ 3.5) |",
    ]

    def pz(s):
        return f"{_f(s['bias'])} / {_f(s['nmad'])} / {_f(100 * s['outliers'], '.0f')}% (n={s['n']})"

    for m, per_ds in results.items():
        for d, r in per_ds.items():
            p = r["all"]["photoz"]
            row = [m, d, pz(p["GALAXY"]["i<21"]), pz(p["GALAXY"]["all"]), pz(p["QSO"]["all"])]
            row.append(pz(p["QSO"]["i<21"]))
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "### Physical parameters (all bands; bias / sigma_NMAD)", ""]
    names = ["TEFF", "EW_HALPHA", "EW_HBETA", "EW_NII_6584", "EW_OIII_5007"]
    lines += ["| model | test set | Teff (K) | log EW Halpha | log EW Hbeta | log EW [NII] | "
              "log EW [OIII] |", "|---|---|---|---|---|---|---|",
              "| OJALA | Test-Real | (Fig. 5) | 0.035 / 0.160 | 0.031 / 0.192 | 0.042 / 0.186 "
              "| 0.021 / 0.291 |"]  # fmt: skip
    for m, per_ds in results.items():
        for d, r in per_ds.items():
            row = [m, d]
            for n in names:
                s = r["all"]["params"].get(n)
                fmt = ".0f" if n == "TEFF" else ".3f"
                row.append("-" if s is None else f"{_f(s['bias'], fmt)} / {_f(s['nmad'], fmt)}")
            lines.append("| " + " | ".join(row) + " |")
    if finetune:
        lines += ["", "### Fine-tuning on frozen embeddings: log10 galaxy half-light radius", "",
                  "| model | n train / test | sigma_NMAD (dex) | baseline (median) | Pearson r |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for m, f in finetune.items():
            lines.append(f"| {m} | {f['n_train']} / {f['n_test']} | {_f(f['nmad'])} | "
                         f"{_f(f['baseline_nmad'])} | {_f(f['pearson_r'], '.2f')} |")  # fmt: skip
    if precision:
        lines += ["", "### bfloat16 against float32 inference (Test-Real, all bands)", "",
                  "| model | n | same class | max abs dz | weighted F1 fp32 / bf16 | "
                  "galaxy sigma_NMAD fp32 / bf16 |", "|---|---|---|---|---|---|"]  # fmt: skip
        for m, a in precision.items():
            lines.append(
                f"| {m} | {a['n']:,} | {a['class_agreement']:.2%} | {_f(a['max_abs_dz'])} | "
                f"{_f(a['weighted_f1_float32'])} / {_f(a['weighted_f1_bfloat16'])} | "
                f"{_f(a['galaxy_nmad_float32'])} / {_f(a['galaxy_nmad_bfloat16'])} |"
            )
    return "\n".join(lines) + "\n"


def _headline(results: dict, finetune: dict) -> pd.DataFrame:
    rows = {}
    for m, per_ds in results.items():
        for d, per_ctx in per_ds.items():
            for c, r in per_ctx.items():
                key = f"{m} | {d} | {c}"
                row = {"weighted F1 (3 classes)": r["class3_all"]["weighted_f1"]}
                row["weighted F1 (4 classes)"] = r["class4_all"]["weighted_f1"]
                t = r["class3"]
                near21 = t[(t["i"] > 20.8) & (t["i"] < 21.2)]["weighted_f1"]
                row["weighted F1 at i = 21"] = float(near21.mean()) if len(near21) else np.nan
                for pop in ("GALAXY", "QSO"):
                    for sub in ("all", "i<21"):
                        s = r["photoz"][pop][sub]
                        row[f"{pop} nmad ({sub})"] = s["nmad"]
                        row[f"{pop} outliers ({sub})"] = s["outliers"]
                    row[f"{pop} bias (all)"] = r["photoz"][pop]["all"]["bias"]
                for p, s in r["params"].items():
                    row[f"{p} bias"] = s["bias"]
                    row[f"{p} nmad"] = s["nmad"]
                rows[key] = row
    return pd.DataFrame(rows).T


def _jsonable(x):
    if isinstance(x, pd.DataFrame):
        return x.replace({np.nan: None}).to_dict(orient="list")
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, float | np.floating) and not np.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    return x


def _html(results, headline, finetune, precision, figs, meta, tables) -> str:
    parts = [
        "<html><head><meta charset='utf-8'><title>Foundation model evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:1300px;margin:auto}"
        "table{border-collapse:collapse;font-size:12px}td,th{padding:2px 6px;"
        "border-bottom:1px solid #ddd;text-align:right}.scroll{overflow-x:auto;max-width:100%}"
        "img{max-width:100%}</style></head><body>",
        "<h1>OJALA-style foundation model: evaluation on the emulated survey</h1>",
        "<p>Test-Real: the emulator's spectroscopic cross-match objects as observed. "
        "Test-Synth: the same objects rebuilt from their noiseless fluxes with their exact "
        "observed errors. The <i>deep</i> sets are the same for a random sample of all "
        "catalogue objects. Solid lines Test-Real, dotted Test-Synth. Sizes: "
        + ", ".join(f"{k} {t.num_rows:,}" for k, t in tables.items())
        + ".</p>",
        "<h2>OJALA's reported numbers (real J-PAS, for comparison)</h2>",
        _table_html(pd.DataFrame({"OJALA": OJALA})),
        "<h2>Headline metrics</h2>",
        _table_html(headline.T),
    ]
    titles = {"": "spectroscopic cross-match", "_deep": "deep random sample"}
    for suffix, label in titles.items():
        if f"classification{suffix}" not in figs:
            continue
        parts += [
            f"<h2>Classification vs i magnitude ({label})</h2>",
            f"<img src='data:image/png;base64,{_fig_png(figs[f'classification{suffix}'])}'>",
            f"<h2>Photometric redshifts ({label})</h2>",
            f"<img src='data:image/png;base64,{_fig_png(figs[f'photoz{suffix}'])}'>",
        ]
    parts.append("<h2>Physical parameters</h2>")
    rows = {}
    for m, per_ds in results.items():
        for d, per_ctx in per_ds.items():
            for p, s in per_ctx["all"]["params"].items():
                rows[(m, d, p)] = s
    parts.append(_table_html(pd.DataFrame(rows).T))
    if finetune:
        parts += ["<h2>Fine-tuning on frozen embeddings</h2>", _table_html(pd.DataFrame(finetune))]
    if precision:
        parts += [
            "<h2>bfloat16 against float32 inference (Test-Real, all bands)</h2>",
            _table_html(pd.DataFrame(precision)),
        ]
    parts.append("<h2>Models</h2>")
    for m, mm in meta.items():
        keep = {k: mm.get(k) for k in ("parameters", "best_epoch", "epochs_run", "best_val_loss")}
        parts.append(
            f"<h3>{html.escape(m)}</h3><pre>{html.escape(json.dumps(keep, indent=1))}</pre>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
