"""The bench report: Markdown + PNGs from stage records, with the full-survey projection.

Every number in the report comes from a JSON record (``records/*.json``); the
report can be regenerated at any time from them (``benchmarks/RESULTS.md`` is
the same text with the figures linked from ``docs/bench/``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from jpasbatch.bench import plots, scaling
from jpasbatch.bench.spec import ClusterShape
from jpasbatch.bench.stage import STAGES
from jpasbatch.core import atomic

STATUS = {True: "met", False: "**NOT met**", None: "not measurable here"}


def load_records(folder: Path) -> list[dict]:
    """The stage records of ``folder`` in report order (CPU before devices)."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        rec = json.loads(path.read_text())
        if "fit" in rec:  # not a stage record (e.g. bench.json, the run)
            records.append(rec)
    order = {name: k for k, name in enumerate(STAGES)}
    records.sort(key=lambda r: (order.get(r["name"], 99), r.get("device", "cpu") != "cpu"))
    return records


def projections(records: list[dict], shape: ClusterShape) -> dict[str, dict]:
    """Projection of every CPU stage record (GPU records used for GPU nodes where present)."""
    gpu = {r["name"]: r for r in records if r.get("device", "cpu") != "cpu"}
    out = {}
    for rec in records:
        if rec.get("device", "cpu") != "cpu":
            continue
        out[rec["name"]] = scaling.project(rec, shape.model_dump(), gpu.get(rec["name"]))
    return out


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "—" if x is None else format(x, spec)


def _diff(x) -> str:
    return "" if x is None else f"{x:.1e}"


def _stage_section(rec: dict, image: str) -> list[str]:
    dev = rec.get("device", "cpu")
    lines = [
        f"### {rec['name']} ({dev}): {rec['title']}",
        "",
        f"- goal (issue {rec['issue']}): {rec['goal']} — {STATUS[rec['goal_met']]}: "
        f"{rec['goal_note']}",
        f"- ratio to peer: **{rec['ratio_to_peer']:.3g}x** at {max(rec['sizes']):,} "
        f"{rec['unit']} with {max(rec['workers'])} worker(s) (peer on "
        f"{rec['ratio_peer_workers']}); workers: {rec['engine']} "
        f"({', '.join(rec.get('engines', {}).values()) or rec['engine']})",
        f"- command: `{rec['command']}` ({rec['created']}, preset {rec.get('preset', '?')}, "
        f"{rec.get('stage_seconds', 0) / 60:.1f} min)",
        "",
        f"| what | n | workers | repeats | median s | min s | max s | {rec['unit']}/s | "
        f"peak GB / worker | {rec['diff_label']} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rec["rows"]:
        what = r["what"] if r["impl"] != "peer" else f"*{r['what']}*"
        lines.append(
            f"| {what} | {r['n']:,} | {r['workers']} | {r['repeats']} | {r['median_s']:.4g} | "
            f"{r['min_s']:.4g} | {r['max_s']:.4g} | {r['per_s']:,.0f} | "
            f"{_fmt(r.get('peak_memory_per_worker_gb'), '.2f')} | "
            f"{_diff(r.get('max_abs_diff_vs_peer'))} |"
        )
    ss, ws = rec.get("strong_scaling"), rec.get("weak_scaling")
    lines.append("")
    if ss:
        pts = ", ".join(
            f"{p['workers']}: {p['speedup']:.2f}x ({p['efficiency']:.0%})" for p in ss["points"]
        )
        lines.append(
            f"- strong scaling at {ss['n']:,} {rec['unit']} (workers: speedup, efficiency): "
            f"{pts}; Amdahl serial fraction {ss['serial_fraction']:.2f}"
        )
    if ws:
        pts = ", ".join(f"{p['workers']}: {p['efficiency']:.0%}" for p in ws["points"])
        lines.append(
            f"- weak scaling, {ws['base_n']:,} {rec['unit']} per worker (workers: efficiency): "
            f"{pts}; Gustafson serial fraction {ws['serial_fraction']:.2f}"
        )
    fit = rec["fit"]
    lines.append(
        f"- fit on one worker: {fit['per_worker_per_s']:,.0f} {rec['unit']}/s per worker "
        f"after a fixed {fit['t0_s']:.2f} s"
    )
    top = scaling.point(rec, "ours", max(rec["sizes"]), max(rec["workers"]))
    if top and top.get("info"):
        info = ", ".join(f"{k}: {v:.3g}" for k, v in top["info"].items())
        lines.append(f"- at {top['n']:,} {rec['unit']} on {top['workers']} worker(s): {info}")
    extra = {k: v for k, v in rec.items() if k.startswith("bf16_")}
    if extra:
        lines.append("- " + ", ".join(f"{k}: {v:.3g}" for k, v in extra.items()))
    lines += ["", f"![{rec['name']}]({image})", ""]
    return lines


def _projection_section(recs: list[dict], proj: dict[str, dict], shape: ClusterShape) -> list:
    by = {r["name"]: r for r in recs if r.get("device", "cpu") == "cpu"}
    lines = [
        f"## Full-survey projection: {shape.objects:,} objects on {shape.nodes} nodes x "
        f"{shape.cores} cores, {shape.gpus} GPUs and {shape.memory_gb:g} GB per node",
        "",
        "Model: `T(N, W) = t0 + N / (r1 W E(W))` per stage, with `r1` the one-worker "
        "throughput and `t0` the fixed start-up cost (least-squares fit of the one-worker "
        "size sweep), `W` the cluster's workers and `E(W)` the parallel efficiency: "
        "**Gustafson** `E = 1 - s_g (1 - 1/W)` with `s_g` fitted to the measured weak "
        "scaling (the estimate: a survey run grows the work with the workers), and "
        "**Amdahl** `E = 1 / (s_a W + 1 - s_a)` with `s_a` fitted to the measured strong "
        "scaling (a pessimistic bound). Memory per worker: the largest measured peak for "
        "stages whose workers hold one partition at a time; a linear fit in items per "
        "worker for stages that hold a shard (training).",
        "",
        "| stage | items | on | workers | r1 /s | t0 s | E (Gustafson) | wall (Gustafson) | "
        "wall (Amdahl bound) | GB / worker | GB / node | fits |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    total = 0.0
    for name, p in proj.items():
        rec = by[name]
        wall = scaling.headline_wall(p)
        if rec.get("pipeline") and wall:
            total += wall
        fits = {True: "yes", False: "**no**", None: "—"}[p.get("fits_node_memory")]
        e = p.get("efficiency_gustafson")
        lines.append(
            f"| {name} | {rec['survey']} | {p['on']} | {p['workers']:,} | "
            f"{p['per_worker_per_s']:,.0f} | {p['t0_s']:.1f} | {_fmt(e, '.2g')} | "
            f"{scaling.human_seconds(wall)}{' (ideal)' if p.get('wall_s_ideal') else ''} | "
            f"{scaling.human_seconds(p.get('wall_s_amdahl'))} | "
            f"{_fmt(p.get('memory_per_worker_gb'), '.2f')} | "
            f"{_fmt(p.get('memory_per_node_gb'), '.1f')} | {fits} |"
        )
    pipe = [n for n in proj if by[n].get("pipeline")]
    lines += [
        "",
        f"**Survey catalogue to VAC** ({' + '.join(pipe) or 'no pipeline stage measured'}): "
        f"about **{scaling.human_seconds(total) if pipe else '—'}** on this cluster (Gustafson "
        "estimates summed; the committee's inference is inside the VAC stage).",
        "",
        "Assumptions:",
        "",
        "1. A worker of the cluster is as fast as one core (or, for GPU records, one GPU) "
        "of the machine measured here; scale `r1` by the ratio of core speeds otherwise.",
        "2. One single-threaded worker per core (Dask workers, Ray Train workers, or kernels "
        "mapped over partitions); GPU nodes use GPU records where they exist, else their cores.",
        "3. The survey is cut into at least as many partitions as there are workers, of the "
        "sizes measured here, so per-worker memory stays as measured.",
        "4. The efficiency fitted on the few worker counts of one machine holds across "
        "nodes: network, scheduler and shared-filesystem limits of a real cluster are not "
        "measured here. On a 2-core machine shared with other jobs the fits rest on two "
        "points each and are weak evidence; rerun `jpasbatch bench` on a node of the target "
        "cluster (and with `--dask-address` / `--ray-address` on the cluster) to replace them.",
        "5. `t0` is paid once per stage; stages run one after another.",
        "6. Mock generation, training and spectral inference work on training sets whose "
        "size is a choice; they are projected at the survey size for scale. Training: one "
        "epoch over that many samples.",
        "",
    ]
    return lines


def markdown(records: list[dict], shape: ClusterShape, image_prefix: str = "") -> str:
    """The report's text (figures linked as ``image_prefix + <name>.png``)."""
    proj = projections(records, shape)
    lines = [
        "# jpasbatch bench: every stage against its peer, scaling, full-survey projection",
        "",
        "Generated by `jpasbatch bench` (or `python -m benchmarks.run`) from the JSON "
        "records beside it; do not edit. Each stage and its peer run in the same process "
        "run on the same inputs, and every answer is checked against the peer's (a fast "
        "wrong stage fails the run). Ratios are what to compare across machines.",
        "",
    ]
    if records:
        m = records[0]["machine"]
        lines += [
            f"Machine: {m['processor']}, {m['cpu_count']} cores, {m.get('memory_gb', '?')} GB, "
            f"device {m['device']}; Python {m['python']}, torch {m['torch']}. Load average "
            f"at the start: {m.get('load_average', '?')}.",
            "",
            "| stage | device | goal (issue) | status | ratio to peer | best "
            "throughput | peak GB / worker |",
            "|---|---|---|---|---:|---:|---:|",
        ]
        for r in records:
            best = max(x["per_s"] for x in r["rows"] if x["impl"] == "ours")
            mem = r["fit"]["memory"]["max_gb"]
            lines.append(
                f"| [{r['name']}](#{_anchor(r)}) | {r.get('device', 'cpu')} | {r['goal']} "
                f"({r['issue']}) | {STATUS[r['goal_met']]}: {r['goal_note']} | "
                f"{r['ratio_to_peer']:.3g}x | {best:,.0f} {r['unit']}/s | {_fmt(mem, '.2f')} |"
            )
        lines.append("")
    missing = [n for n in STAGES if n not in {r["name"] for r in records}]
    if missing:
        lines += [f"Stages without a record yet: {', '.join(missing)}.", ""]
    if proj:
        lines += [f"![overview]({image_prefix}overview.png)", ""]
        lines += _projection_section(records, proj, shape)
    lines += ["## Stages", ""]
    for r in records:
        lines += _stage_section(r, f"{image_prefix}{_image(r)}")
    return "\n".join(lines)


def _image(rec: dict) -> str:
    dev = rec.get("device", "cpu")
    return f"{rec['name']}.png" if dev == "cpu" else f"{rec['name']}-{_slug(dev)}.png"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def _anchor(rec: dict) -> str:
    head = f"{rec['name']} ({rec.get('device', 'cpu')}): {rec['title']}".lower()
    return "".join(c if c.isalnum() or c in "-_" else "-" if c == " " else "" for c in head)


def write_report(
    records_dir: Path, out: Path, shape: ClusterShape | None = None, results_md: Path | None = None
) -> Path:
    """Figures and ``out/report.md`` from every record in ``records_dir``.

    With ``results_md``, also that file (figures linked relative to it).
    """
    shape = shape or ClusterShape()
    records = load_records(records_dir)
    out.mkdir(parents=True, exist_ok=True)
    for rec in records:
        plots.stage_figure(rec, out / _image(rec))
    if records:
        plots.overview_figure(records, projections(records, shape), out / "overview.png")
    path = _write(out / "report.md", markdown(records, shape, ""))
    if results_md is not None:
        prefix = os.path.relpath(out, results_md.parent) + "/"
        _write(results_md, markdown(records, shape, prefix))
    return path


def _write(path: Path, text: str) -> Path:
    return atomic.write_text(path, text + "\n")
