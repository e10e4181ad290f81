"""``jpasbatch real-check``: the whole chain on real survey spectra, scored against their labels.

For every set of :func:`jpasbatch.spectra.realsets.discover`: synthetic J-PAS photometry
of its files with the survey's depth noise (the ``jpasbatch photometry`` path,
per-file rejects), then the VAC (``jpasbatch infer`` on Dask: template fit, and
the classifier / foundation model when given), then the scores of each method
against the pipeline labels. Checks what every run must keep: files in = files
written + rejected, band coverage of the bands each spectrum's range covers, every
spectrum's name in the VAC. Writes ``OUT/real_check.json`` and ``OUT/report.md``;
``record=True`` writes the classifier's figures beside it (``real_sky.json``),
which ``jpasbatch infer --class-from auto`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.core.errors import InputError
from jpasbatch.core.metrics import confusion_matrix, f1_scores
from jpasbatch.foundation.evaluate import photoz_stats
from jpasbatch.physics.photometry import SyntheticPhotometry
from jpasbatch.spectra.batch import rejects_table
from jpasbatch.spectra.photometry import add_depth_noise, photometry_files
from jpasbatch.spectra.realsets import band_coverage, discover, match_labels
from jpasbatch.vac.baseline import combined_class

#: The magnitude that splits the bright and faint halves of each table.
R_SPLIT = 21.0
#: Methods scored: name -> (class column, redshift column) of the VAC.
METHODS = {
    "template": ("CLASS_TEMPLATE", "Z_TEMPLATE"),
    "classifier": ("CLASS_ANN", None),
    "combined": ("CLASS_COMBINED", "Z_TEMPLATE"),
    "foundation": ("CLASS_OJALA", "Z_PHOT_OJALA"),
}


def scores(rows: pd.DataFrame, class_col: str | None, z_col: str | None) -> dict:
    """Classification and redshift figures of one method on matched rows.

    ``macro_f1`` averages the F1 of the classes present in the truth; QSO
    completeness counts a true QSO found as either QSO class; redshift figures
    use the method's redshift for every true QSO (galaxy) whatever class it gave.
    """
    out: dict = {"n": len(rows)}
    truth = rows["CLASS_TRUE"].to_numpy()
    if class_col is not None and class_col in rows:
        idx = {c: k for k, c in enumerate(CLASSES)}
        y = np.array([idx.get(c, -1) for c in truth])
        p = np.array([idx.get(c, -1) for c in rows[class_col].fillna("")])
        ok = (y >= 0) & (p >= 0)
        cm = confusion_matrix(y[ok], p[ok], n_classes=len(CLASSES))
        f1 = f1_scores(cm)
        present = cm.sum(axis=1) > 0
        out["f1"] = {c: (float(f1[k]) if present[k] else None) for k, c in enumerate(CLASSES)}
        out["macro_f1"] = float(np.nanmean(np.where(present, f1, np.nan))) if ok.any() else None
        qso = np.isin(truth, ["QSO_LOW", "QSO_HIGH"])
        found = np.isin(rows[class_col].fillna("").to_numpy(), ["QSO_LOW", "QSO_HIGH"])
        out["qso_completeness"] = float(found[qso].mean()) if qso.any() else None
        out["predicted"] = {c: int((rows[class_col] == c).sum()) for c in CLASSES}
    if z_col is not None and z_col in rows:
        z = rows[z_col].to_numpy(float)
        zt = rows["Z_TRUE"].to_numpy(float)
        for name, classes in (("qso", ["QSO_LOW", "QSO_HIGH"]), ("galaxy", ["GALAXY"])):
            sel = np.isin(truth, classes)
            if sel.any():
                stats = photoz_stats(z[sel], zt[sel])
                dz = np.abs(z[sel] - zt[sel]) / (1 + zt[sel])
                out[f"{name}_dz015"] = float(np.mean(dz < 0.15))
                out[f"{name}_nmad"] = stats["nmad"]
                out[f"{name}_n"] = int(sel.sum())
    return out


def real_check(
    root: str | Path,
    out: str | Path,
    *,
    model: str | Path | None = None,
    foundation: str | Path | None = None,
    seed: int = 0,
    templates: str = "full",
    client=None,
    progress: bool = True,
) -> dict:
    """Run the chain on every real set under ``root``; returns (and writes) the figures."""
    from jpasbatch.vac.infer import InferSpec, infer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sp = SyntheticPhotometry()
    figures: dict = {"sets": {}, "noise": "depth", "seed": seed}
    matched_all = []
    # the methods this run has: the template fit always, the others when given
    given = {"classifier": model, "combined": model, "foundation": foundation}
    methods = {m: cols for m, cols in METHODS.items() if given.get(m, True) is not None}
    for k, rs in enumerate(discover(root)):
        d = out / rs.name
        d.mkdir(exist_ok=True)
        table, rejects = photometry_files(rs.files, sp)
        coverage = band_coverage(table.to_pandas(), sp.bands, sp.lo, sp.hi)
        table = add_depth_noise(table, sp.bands, seed + k)
        pq.write_table(table, d / "phot.parquet")
        pacsv.write_csv(rejects_table(rejects), d / "phot.rejects.csv")
        spec = InferSpec(
            catalogue=d / "phot.parquet",
            model=model,
            foundation=foundation,
            out=d / "vac",
            templates=templates,
            class_source="template",
            keep_columns=["ID", "SPECNAME"],
        )
        summary = infer(spec, client=client, progress=progress)
        vac = pd.concat(
            pd.read_parquet(f) for f in sorted((d / "vac" / "dataset").glob("*.parquet"))
        )
        if model is not None:  # the classifier as a prior on the template fit, from the VAC
            vac["CLASS_COMBINED"] = combined_class(
                vac[[f"P_{c}" for c in CLASSES]].to_numpy(float),
                vac[[f"P_TEMPLATE_{c}" for c in CLASSES]].to_numpy(float),
            )
        if foundation is not None:  # the foundation model's most probable class
            p_fm = vac[[f"P_{c}_OJALA" for c in CLASSES]].to_numpy(float)
            best = np.asarray(CLASSES, dtype=object)[np.argmax(np.nan_to_num(p_fm, nan=-1), 1)]
            vac["CLASS_OJALA"] = np.where(np.isfinite(p_fm).all(1), best, None)
        matched = match_labels(vac, rs.labels).assign(SET=rs.name)
        matched_all.append(matched)
        written = set(table["SOURCE"].to_pylist())
        figures["sets"][rs.name] = {
            "files": len(rs.files),
            "files_written": len(written),
            "files_rejected": len(rs.files) - len(written),
            "spectra_written": table.num_rows,
            "spectra_rejected": len(rejects),
            # every file is in the table or in the rejects (or both, for a multi-object
            # file with one bad spectrum)
            "files_conserved": {str(f) for f in rs.files} == written | {r.source for r in rejects},
            **coverage,
            "vac_rows": summary["rows_vac"],
            "vac_rejected": summary["rows_rejected"],
            "names_in_vac": bool(set(table["SPECNAME"].to_pylist()) <= set(vac["SPECNAME"])),
            "labelled": len(matched),
            "scores": {m: scores(matched, *cols) for m, cols in methods.items()},
        }
    rows = pd.concat(matched_all, ignore_index=True)
    rows.to_csv(out / "objects.csv", index=False)
    figures["all"] = {
        "n": len(rows),
        **{
            part: {m: scores(sel, *cols) for m, cols in methods.items()}
            for part, sel in (
                ("all", rows),
                (f"r<{R_SPLIT:g}", rows[rows["MAG_R"] < R_SPLIT]),
                (f"r>={R_SPLIT:g}", rows[~(rows["MAG_R"] < R_SPLIT)]),
            )
        },
    }
    (out / "real_check.json").write_text(json.dumps(figures, indent=1))
    (out / "report.md").write_text(report(figures))
    return figures


#: The methods each kind of model's ``real_sky.json`` records: those ``infer``'s
#: ``auto`` sources choose among.
RECORDED = {
    "classifier": ("template", "classifier", "combined"),
    "foundation": ("template", "foundation"),
}


def record_path(model: str | Path, kind: str = "classifier") -> Path:
    """Where :func:`record` writes ``model``'s figures; refuses a published model."""
    from jpasbatch.classify.load import model_file
    from jpasbatch.core.modelio import model_paths
    from jpasbatch.vac.infer import REAL_SKY

    card = model_file(model) if kind == "classifier" else model_paths(model)[1]
    if (card.parent / "SHA256SUMS").exists():
        # a published model's files are fixed by its checksums: record the run, then publish
        raise InputError("a published model is not rewritten: record its run folder", path=card)
    return card.parent / REAL_SKY


def record(figures: dict, model: str | Path, kind: str = "classifier") -> Path:
    """Write a model's real-sky figures beside it (``real_sky.json``), which ``jpasbatch
    infer --class-from auto`` (classifier) and ``--z-from auto`` (foundation) read."""
    overall = figures["all"]["all"]
    path = record_path(model, kind)
    path.write_text(json.dumps({m: overall[m] for m in RECORDED[kind] if m in overall}, indent=1))
    return path


def _fmt(v, digits: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def report(figures: dict) -> str:
    """The figures as Markdown: the chain's checks per set, then the side-by-side table."""
    lines = [
        "# The chain on real survey spectra",
        "",
        f"Photometry with `--noise depth` (seed {figures['seed']}), VAC by `jpasbatch infer`.",
        "",
        "| set | files | written | rejected | band coverage | VAC rows | names in VAC | labelled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in figures["sets"].items():
        lines.append(
            f"| {name} | {s['files']} | {s['spectra_written']} | {s['spectra_rejected']} | "
            f"{s['bands_covered']}/{s['bands_in_range']} ({100 * s['coverage']:.1f}%) | "
            f"{s['vac_rows']} (+{s['vac_rejected']} rejected) | {s['names_in_vac']} | "
            f"{s['labelled']} |"
        )
    lines += [
        "",
        "## Side by side (all sets together)",
        "",
        "| objects | method | macro F1 | F1 STAR | F1 GALAXY | F1 QSO_LOW | F1 QSO_HIGH | "
        "QSO completeness | QSO dz<0.15 | QSO sigma_NMAD | galaxy dz<0.15 | galaxy sigma_NMAD |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for part, methods in figures["all"].items():
        if part == "n":
            continue
        for m, s in methods.items():
            f1 = s.get("f1", {})
            lines.append(
                f"| {part} ({s['n']}) | {m} | {_fmt(s.get('macro_f1'))} | "
                + " | ".join(_fmt(f1.get(c)) for c in CLASSES)
                + f" | {_fmt(s.get('qso_completeness'))} | {_fmt(s.get('qso_dz015'))} | "
                f"{_fmt(s.get('qso_nmad'), 4)} | {_fmt(s.get('galaxy_dz015'))} | "
                f"{_fmt(s.get('galaxy_nmad'), 4)} |"
            )
    lines += ["", "## Per set", ""]
    for name, s in figures["sets"].items():
        for m, sc in s["scores"].items():
            lines.append(
                f"- {name}, {m}: macro F1 {_fmt(sc.get('macro_f1'))}, predicted "
                f"{sc.get('predicted', '-')}, QSO dz<0.15 {_fmt(sc.get('qso_dz015'))}, "
                f"galaxy dz<0.15 {_fmt(sc.get('galaxy_dz015'))}"
            )
    return "\n".join(lines) + "\n"
