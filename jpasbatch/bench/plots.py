"""The bench's figures: throughput vs size and vs workers, ratio to the peer, projection.

Built on ``matplotlib.figure.Figure`` (no pyplot state), like :mod:`jpasbatch.physics.plots`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jpasbatch.bench import scaling


def _curve(rows: list[dict], impl: str, workers: int) -> tuple[np.ndarray, np.ndarray]:
    pts = sorted(
        (r["n"], r["per_s"]) for r in rows if r["impl"] == impl and r["workers"] == workers
    )
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def stage_figure(rec: dict, path: Path) -> Path:
    """Three panels: throughput vs size, throughput vs workers, ratio to the peer vs size."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    rows = rec["rows"]
    workers = sorted({r["workers"] for r in rows if r["impl"] == "ours"})
    for w in (workers[0], workers[-1]) if len(workers) > 1 else workers:
        n, v = _curve(rows, "ours", w)
        a.plot(n, v, "o-", label=f"jpasbatch, {w} worker(s)")
    for w in sorted({r["workers"] for r in rows if r["impl"] == "peer"}):
        n, v = _curve(rows, "peer", w)
        a.plot(n, v, "s--", label=f"peer, {w} worker(s)")
    a.set(
        xscale="log",
        yscale="log",
        xlabel=f"size [{rec['unit']}]",
        ylabel=f"{rec['unit']} / s",
        title="throughput vs size",
    )
    a.legend(fontsize=7)

    ss, ws = rec.get("strong_scaling"), rec.get("weak_scaling")
    if ss:
        w = np.array([p["workers"] for p in ss["points"]])
        v = np.array([p["per_s"] for p in ss["points"]])
        b.plot(w, v, "o-", label=f"strong: {ss['n']:,} {rec['unit']}")
        b.plot(w, v[0] * w, ":", color="grey", label="ideal (strong)")
    if ws:
        w = np.array([p["workers"] for p in ws["points"]])
        v = np.array([p["per_s"] for p in ws["points"]])
        b.plot(w, v, "s-", label=f"weak: {ws['base_n']:,} per worker")
    b.set(
        xlabel=f"workers ({rec['engine']})",
        ylabel=f"{rec['unit']} / s",
        title="throughput vs workers",
    )
    b.set_xticks(sorted({r["workers"] for r in rows}))
    if ss or ws:
        b.legend(fontsize=7)

    for w, pw in sorted({(x["workers"], x["peer_workers"]) for x in rec["ratios"]}):
        pts = sorted(
            (x["n"], x["ratio"])
            for x in rec["ratios"]
            if x["workers"] == w and x["peer_workers"] == pw
        )
        c.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{w} vs peer on {pw}")
    c.axhline(1, color="grey", lw=0.8)
    c.set(
        xscale="log",
        yscale="log",
        xlabel=f"size [{rec['unit']}]",
        ylabel="throughput / peer's",
        title="ratio to the peer",
    )
    c.legend(fontsize=7)
    fig.suptitle(f"{rec['name']} ({rec.get('device', 'cpu')}): {rec['title']}", fontsize=10)
    return _save(fig, path)


def overview_figure(records: list[dict], projections: dict[str, dict], path: Path) -> Path:
    """Ratio to the peer per stage, and the projected full-survey wall time per stage."""
    fig = Figure(figsize=(12, 4), layout="constrained")
    a, b = fig.subplots(1, 2)
    names = [f"{r['name']}\n({r.get('device', 'cpu')})" for r in records]
    ratios = [r["ratio_to_peer"] for r in records]
    colours = ["tab:green" if x >= 1 else "tab:red" for x in ratios]
    a.barh(names, ratios, color=colours)
    a.axvline(1, color="grey", lw=0.8)
    a.set(
        xscale="log",
        xlabel="throughput / peer's (largest size, most workers)",
        title="each stage against its peer",
    )
    a.invert_yaxis()
    proj = [(k, scaling.headline_wall(p)) for k, p in projections.items()]
    proj = [(k, v) for k, v in proj if v]
    if proj:
        b.barh([k for k, _ in proj], [v / 3600 for _, v in proj], color="tab:blue")
        b.set(xscale="log", xlabel="projected wall time [h]", title="full survey (projection)")
        b.invert_yaxis()
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    return path
