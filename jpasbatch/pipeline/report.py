"""The job's evaluation stage and its one-page HTML report (``WORKDIR/report.html``).

Evaluates the trained classifier on the mocks' test split and on Test-Real
(per protocol), compares the VAC with the emulator's truth, and gathers the
VAC summary, the expected counts and the head of the QSO target list on one
page with links to every detailed report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.pipeline.state import read_state


def job_report(job, paths) -> Path:
    """Run the evaluations the job's stages allow and write ``paths.report``."""
    from jpasbatch.classify.evaluate import evaluate_models
    from jpasbatch.core.html import write_html_report

    out = paths.evaluation
    spec = job.evaluate
    model = {job.train.name if job.train else "classifier": paths.model}
    sections: list[tuple[str, object]] = []
    links: list[tuple[str, Path]] = []
    test_sets = []
    if job.mocks is not None:
        test_sets.append(("mock test split", [paths.mocks], ("test",)))
        if (paths.mocks_dir / "test_real.parquet").exists():
            test_sets.append(("Test-Real", [paths.mocks_dir / "test_real.parquet"], None))
    for title, data, splits in test_sets:
        rows = []
        for protocol in spec.protocols:
            folder = out / f"{title.replace(' ', '_').lower()}_{protocol}"
            table = evaluate_models(model, data, folder, splits=splits, title=title,
                                    protocol=protocol)  # fmt: skip
            rows.append(table)
            links.append((f"{title} ({protocol})", folder / "report.html"))
        sections.append((f"Classifier on the {title}", pd.concat(rows, ignore_index=True)))
    vac_summary = paths.vac / "vac_summary.json"
    if job.infer is not None and vac_summary.exists():
        sections += _vac_sections(paths, out, job, spec, links)
    sections.append(("Detailed reports", _link_list(links, paths.workdir)))
    sections.append(("Stages", _stage_table(paths.workdir)))
    return write_html_report(paths.workdir, f"jpasbatch job {job.name!r}", sections)


def _vac_sections(paths, out: Path, job, spec, links) -> list[tuple[str, object]]:
    from jpasbatch.vac.targets import read_vac

    summary = json.loads((paths.vac / "vac_summary.json").read_text())
    head = pd.DataFrame(
        [
            {
                "rows in": summary["rows_in"],
                "VAC rows": summary["rows_vac"],
                "rejected": summary["rows_rejected"],
                "partitions": summary["partitions"],
                "provenance id": summary["provenance_id"],
            }
        ]
    )
    sections: list[tuple[str, object]] = [("Value-added catalogue", head)]
    classes = read_vac(paths.vac, ["CLASS"])["CLASS"].value_counts()
    sections.append(("VAC objects by most probable class", classes.to_frame("objects")))
    counts = pd.read_csv(paths.vac / "targets" / "expected_counts.csv")
    sections.append(("Expected counts per observed r bin", _plot_counts(counts, out)))
    targets = pd.read_csv(paths.vac / "targets" / "qso_targets.csv")
    sections.append((f"QSO target list: {len(targets):,} candidates (first 15)", targets.head(15)))
    if job.simulate is not None:
        from jpasbatch.vac.truth import vac_against_truth

        rep = vac_against_truth(paths.vac, paths.sim / "truth", out / "vac_vs_truth",
                                r_max=spec.r_max)  # fmt: skip
        links.append(("VAC against the emulator's truth", rep["report"]))
        sections.append(("VAC against the emulator's truth (observed r bins)", rep["table"]))
        sections.append(("F1 against observed r, VAC vs truth", rep["figures"]["f1_vs_mag"]))
    return sections


def _plot_counts(counts: pd.DataFrame, out: Path) -> Path:
    from matplotlib.figure import Figure

    from jpasbatch.physics.plots import OBSERVED_R, class_colour

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    centre = 0.5 * (counts["MAG_R_LO"] + counts["MAG_R_HI"])
    for c in CLASSES:
        ax.step(centre, counts[f"N_{c}_EXPECTED"], where="mid", color=class_colour(c), label=c)
    ax.set(xlabel=OBSERVED_R, ylabel="expected objects (sum of P)", yscale="log")
    ax.legend()
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "expected_counts.png"
    fig.savefig(path, dpi=100)
    return path


def _link_list(links: list[tuple[str, Path]], root: Path) -> str:
    import os

    items = "".join(
        f'<li><a href="{Path(os.path.relpath(p, root)).as_posix()}">{t}</a></li>' for t, p in links
    )
    return f"<ul>{items}</ul>"


def _stage_table(workdir: Path) -> pd.DataFrame:
    state = read_state(workdir)
    rows = [
        {"stage": k, "finished": v.get("finished"), "seconds": v.get("seconds"),
         "fingerprint": v.get("fingerprint")}
        for k, v in state.get("stages", {}).items()
    ]  # fmt: skip
    return pd.DataFrame(rows)
