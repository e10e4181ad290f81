"""Scaling curves from a stage's measurements, the fits, and the full-survey projection.

The model a projection extrapolates with (also printed in every report)::

    T(N, W) = t0 + N / (r1 * W * E(W))

* ``r1``: items per second of one worker, the slope of the one-worker size
  sweep (``T = t0 + N / r1`` fitted by least squares, ``t0 >= 0``);
* ``t0``: the fixed start-up cost of a run (cluster, model load, first file);
* ``E(W)``: parallel efficiency. **Gustafson** (the estimate): from the weak
  scaling (size proportional to workers) the scaled speedup ``W E = W - s_g (W - 1)``,
  so ``E = 1 - s_g (1 - 1/W)``; a survey run grows the work with the workers (each
  worker takes its own partitions), which is the weak-scaling regime.
  **Amdahl** (the pessimistic bound): from the strong scaling (fixed size) the
  speedup ``S = 1 / (s_a + (1 - s_a) / W)``, so ``E = 1 / (s_a W + 1 - s_a)``.

Serial fractions are least-squares fits (both linear in ``s``), clipped to [0, 1].
"""

from __future__ import annotations

import numpy as np


def ours_rows(rec: dict) -> list[dict]:
    return [r for r in rec["rows"] if r["impl"] == "ours"]


def point(rec: dict, impl: str, n: int, workers: int) -> dict | None:
    """The row of ``impl`` at (n, workers), if measured."""
    for r in rec["rows"]:
        if r["impl"] == impl and r["n"] == n and r["workers"] == workers:
            return r
    return None


def strong_scaling(rec: dict) -> dict | None:
    """Speedup and efficiency at the largest size measured on every worker count."""
    rows = ours_rows(rec)
    by_n: dict[int, dict[int, dict]] = {}
    for r in rows:
        by_n.setdefault(r["n"], {})[r["workers"]] = r
    candidates = [n for n, d in by_n.items() if 1 in d and len(d) > 1]
    if not candidates:
        return None
    n = max(candidates)
    base = by_n[n][1]["median_s"]
    pts = [
        {
            "workers": w,
            "per_s": r["per_s"],
            "speedup": base / r["median_s"],
            "efficiency": base / r["median_s"] / w,
        }
        for w, r in sorted(by_n[n].items())
    ]
    return {"n": n, "points": pts, "serial_fraction": amdahl_fraction(pts)}


def weak_scaling(rec: dict, base: int | None) -> dict | None:
    """Efficiency T(base, 1) / T(base * w, w) for the measured worker counts."""
    if base is None:
        return None
    ref = point(rec, "ours", base, 1)
    if ref is None:
        return None
    pts = []
    for r in sorted(ours_rows(rec), key=lambda r: r["workers"]):
        if r["n"] == base * r["workers"]:
            eff = ref["median_s"] / r["median_s"]
            pts.append(
                {
                    "workers": r["workers"],
                    "n": r["n"],
                    "per_s": r["per_s"],
                    "efficiency": eff,
                    "scaled_speedup": eff * r["workers"],
                }
            )
    if len(pts) < 2:
        return None
    return {"base_n": base, "points": pts, "serial_fraction": gustafson_fraction(pts)}


def amdahl_fraction(pts: list[dict]) -> float | None:
    """Serial fraction s_a of 1/S = s (1 - 1/w) + 1/w (least squares over w > 1)."""
    x = np.array([1 - 1 / p["workers"] for p in pts if p["workers"] > 1])
    y = np.array([1 / p["speedup"] - 1 / p["workers"] for p in pts if p["workers"] > 1])
    if not len(x):
        return None
    return float(np.clip((x * y).sum() / (x * x).sum(), 0.0, 1.0))


def gustafson_fraction(pts: list[dict]) -> float | None:
    """Serial fraction s_g of w E = w - s (w - 1) (least squares over w > 1)."""
    x = np.array([p["workers"] - 1 for p in pts if p["workers"] > 1], dtype=float)
    y = np.array([p["workers"] - p["scaled_speedup"] for p in pts if p["workers"] > 1])
    if not len(x):
        return None
    return float(np.clip((x * y).sum() / (x * x).sum(), 0.0, 1.0))


def size_fit(rec: dict) -> dict:
    """``T = t0 + n / r1`` over the one-worker rows of the stage (``t0 >= 0``)."""
    rows = [r for r in ours_rows(rec) if r["workers"] == 1]
    n = np.array([r["n"] for r in rows], dtype=float)
    t = np.array([r["median_s"] for r in rows], dtype=float)
    if len(set(n)) >= 2:
        slope, t0 = np.polyfit(n, t, 1)
        if t0 < 0 or slope <= 0:
            t0, slope = 0.0, float((n * t).sum() / (n * n).sum())
    else:
        t0, slope = 0.0, float(t[-1] / n[-1])
    return {"t0_s": float(t0), "per_worker_per_s": float(1 / slope)}


def memory_fit(rec: dict) -> dict:
    """Per-worker peak memory: largest seen, and a linear fit in items per worker."""
    rows = [r for r in ours_rows(rec) if r.get("peak_memory_per_worker_gb")]
    if not rows:
        return {"max_gb": None, "gb_at_0": None, "gb_per_item": None}
    x = np.array([r["n"] / r["workers"] for r in rows], dtype=float)
    m = np.array([r["peak_memory_per_worker_gb"] for r in rows], dtype=float)
    if len(set(x)) >= 2:
        slope, m0 = np.polyfit(x, m, 1)
        slope = max(float(slope), 0.0)
    else:
        slope, m0 = 0.0, float(m.max())
    return {"max_gb": float(m.max()), "gb_at_0": float(m0), "gb_per_item": slope}


def analyse(rec: dict, weak_base: int | None) -> dict:
    """Add ``strong_scaling``, ``weak_scaling`` and ``fit`` to a stage record (returned)."""
    rec["strong_scaling"] = strong_scaling(rec)
    rec["weak_scaling"] = weak_scaling(rec, weak_base)
    rec["fit"] = size_fit(rec) | {"memory": memory_fit(rec)}
    return rec


def efficiency(rec: dict, workers: int, law: str) -> float | None:
    """E(workers) by Gustafson (``gustafson``) or Amdahl (``amdahl``); None if unmeasured."""
    if law == "gustafson":
        ws = rec.get("weak_scaling")
        s = ws and ws["serial_fraction"]
        return None if s is None else 1 - s * (1 - 1 / workers)
    ss = rec.get("strong_scaling")
    s = ss and ss["serial_fraction"]
    return None if s is None else 1 / (s * workers + 1 - s)


def project(rec: dict, shape: dict, gpu_rec: dict | None = None) -> dict:
    """Wall time and memory of ``shape['objects']`` items on the cluster ``shape``."""
    n = shape["objects"]
    fit = rec["fit"]
    on_gpu = bool(shape.get("gpus")) and gpu_rec is not None
    if on_gpu:
        workers_per_node = shape["gpus"]
        r1, t0 = gpu_rec["fit"]["per_worker_per_s"], gpu_rec["fit"]["t0_s"]
    else:
        workers_per_node = shape["cores"]
        r1, t0 = fit["per_worker_per_s"], fit["t0_s"]
    w = shape["nodes"] * workers_per_node
    out = {
        "workers": w,
        "on": gpu_rec["machine"]["device"] if on_gpu else "CPU cores",
        "per_worker_per_s": r1,
        "t0_s": t0,
    }
    notes = []
    for law in ("gustafson", "amdahl"):
        e = efficiency(rec, w, law)
        if e is None:
            notes.append(f"no {'weak' if law == 'gustafson' else 'strong'} scaling measured")
        out[f"efficiency_{law}"] = e
        out[f"wall_s_{law}"] = None if e is None else t0 + n / (r1 * w * e)
    if out["wall_s_gustafson"] is None:  # nothing measured beyond one worker
        out["wall_s_ideal"] = t0 + n / (r1 * w)
        notes.append("perfect scaling assumed")
    mem = fit["memory"]
    if mem["max_gb"] is not None:
        if rec.get("memory") == "shard":
            per_worker = mem["gb_at_0"] + mem["gb_per_item"] * n / w
        else:
            per_worker = mem["max_gb"]
        out["memory_per_worker_gb"] = per_worker
        out["memory_per_node_gb"] = per_worker * workers_per_node
        out["fits_node_memory"] = per_worker * workers_per_node <= shape["memory_gb"]
    out["notes"] = notes
    return out


def headline_wall(p: dict) -> float | None:
    """The projection's estimate: Gustafson, else ideal scaling."""
    return p.get("wall_s_gustafson") or p.get("wall_s_ideal")


def human_seconds(s: float | None) -> str:
    """``95 s``, ``12 min``, ``3.4 h``, ``2.1 d``."""
    if s is None or not np.isfinite(s):
        return "—"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"
