"""Scaling fits and the full-survey projection against hand computations."""

import numpy as np
import pytest

from jpasbatch.bench import scaling


def _row(n, w, seconds, impl="ours", mem=None):
    return {"impl": impl, "n": n, "workers": w, "median_s": seconds, "per_s": n / seconds,
            "peak_memory_per_worker_gb": mem}  # fmt: skip


def _record(t0=2.0, r1=1000.0, s_amdahl=0.2, s_gustafson=0.1, mem=(1.0, 1.0, 1.0, 1.0)):
    """Rows made by the models themselves, so the fits must give their parameters back."""
    big, base = 40_000, 20_000
    rows = [_row(n, 1, t0 + n / r1, mem=mem[0]) for n in (10_000, base, big)]
    # strong: T(big, w) = T(big, 1) (s + (1 - s) / w)
    t1 = t0 + big / r1
    rows += [_row(big, 2, t1 * (s_amdahl + (1 - s_amdahl) / 2), mem=mem[1])]
    rows += [_row(big, 4, t1 * (s_amdahl + (1 - s_amdahl) / 4), mem=mem[2])]
    # weak: T(base w, w) = T(base, 1) / E, E = 1 - s (1 - 1/w)
    tb = t0 + base / r1
    rows += [_row(base * 4, 4, tb / (1 - s_gustafson * (1 - 1 / 4)), mem=mem[3])]
    # (big, 2) is also the weak point of w = 2; drop it from the weak fit by using w = 4 only
    return {"rows": rows, "unit": "objects", "memory": "partition"}, base


def test_fits_recover_the_parameters_the_rows_were_made_with():
    rec, base = _record()
    scaling.analyse(rec, base)
    assert rec["fit"]["t0_s"] == pytest.approx(2.0, rel=1e-9)
    assert rec["fit"]["per_worker_per_s"] == pytest.approx(1000.0, rel=1e-9)
    assert rec["strong_scaling"]["n"] == 40_000
    assert rec["strong_scaling"]["serial_fraction"] == pytest.approx(0.2, abs=1e-12)
    ws = rec["weak_scaling"]
    # the w = 2 weak point is (40,000, 2), which was made by Amdahl, not Gustafson: fit by hand
    e2 = (2.0 + 20) / (42.0 * (0.2 + 0.8 / 2))
    s2 = 2 * (1 - e2) / 1
    x, y = np.array([1.0, 3.0]), np.array([s2 * 1, 0.1 * 3])
    assert ws["serial_fraction"] == pytest.approx((x * y).sum() / (x * x).sum(), rel=1e-9)


def test_serial_fractions_are_clipped_to_0_1():
    # superlinear speedup (s < 0) and slow-down (s > 1)
    assert scaling.amdahl_fraction([{"workers": 2, "speedup": 2.5}]) == 0.0
    assert scaling.amdahl_fraction([{"workers": 2, "speedup": 0.4}]) == 1.0
    assert scaling.gustafson_fraction([{"workers": 2, "scaled_speedup": 0.5}]) == 1.0


def test_projection_is_the_stated_model():
    rec, base = _record()
    scaling.analyse(rec, base)
    shape = {"nodes": 4, "cores": 8, "gpus": 0, "memory_gb": 16.0, "objects": 1_000_000}
    p = scaling.project(rec, shape)
    w = 32
    s_g = rec["weak_scaling"]["serial_fraction"]
    e = 1 - s_g * (1 - 1 / w)
    assert p["workers"] == w and p["efficiency_gustafson"] == pytest.approx(e)
    assert p["wall_s_gustafson"] == pytest.approx(2.0 + 1e6 / (1000.0 * w * e))
    e_a = 1 / (0.2 * w + 0.8)
    assert p["wall_s_amdahl"] == pytest.approx(2.0 + 1e6 / (1000.0 * w * e_a))
    assert p["wall_s_amdahl"] > p["wall_s_gustafson"]  # the bound is the pessimistic one
    assert p["memory_per_worker_gb"] == 1.0 and p["memory_per_node_gb"] == 8.0
    assert p["fits_node_memory"]


def test_shard_memory_grows_with_items_per_worker():
    rec, base = _record()
    rec["memory"] = "shard"
    for r in rec["rows"]:  # 0.2 GB + 50 kB per item the worker holds
        r["peak_memory_per_worker_gb"] = 0.2 + 5e-5 * r["n"] / r["workers"]
    scaling.analyse(rec, base)
    mem = rec["fit"]["memory"]
    assert mem["gb_at_0"] == pytest.approx(0.2) and mem["gb_per_item"] == pytest.approx(5e-5)
    shape = {"nodes": 1, "cores": 1, "gpus": 0, "memory_gb": 1.0, "objects": 400_000}
    p = scaling.project(rec, shape)
    assert p["memory_per_worker_gb"] == pytest.approx(0.2 + 5e-5 * 4e5)
    assert not p["fits_node_memory"]
    rec["memory"] = "partition"  # the same rows, partition-bound: the largest peak stands
    assert scaling.project(rec, shape)["memory_per_worker_gb"] == pytest.approx(0.2 + 5e-5 * 4e4)


def test_without_scaling_measurements_perfect_scaling_is_assumed_and_said():
    rec = {"rows": [_row(1000, 1, 1.0), _row(2000, 1, 2.0)], "memory": "partition"}
    scaling.analyse(rec, 1000)
    assert rec["strong_scaling"] is None and rec["weak_scaling"] is None
    p = scaling.project(rec, {"nodes": 2, "cores": 5, "gpus": 0, "memory_gb": 1, "objects": 10**6})
    assert p["wall_s_gustafson"] is None
    assert p["wall_s_ideal"] == pytest.approx(1e6 / (1000 * 10))
    assert "perfect scaling assumed" in p["notes"]


def test_gpu_nodes_use_the_gpu_record():
    rec, base = _record()
    scaling.analyse(rec, base)
    gpu = {"fit": {"per_worker_per_s": 1e5, "t0_s": 1.0}, "machine": {"device": "NVIDIA H200"}}
    shape = {"nodes": 2, "cores": 8, "gpus": 4, "memory_gb": 64, "objects": 10**7}
    p = scaling.project(rec, shape, gpu)
    assert p["on"] == "NVIDIA H200" and p["workers"] == 8
    e = 1 - rec["weak_scaling"]["serial_fraction"] * (1 - 1 / 8)
    assert p["wall_s_gustafson"] == pytest.approx(1.0 + 1e7 / (1e5 * 8 * e))


def test_human_seconds():
    assert scaling.human_seconds(30) == "30 s"
    assert scaling.human_seconds(600) == "10 min"
    assert scaling.human_seconds(3 * 3600) == "3.0 h"
    assert scaling.human_seconds(3 * 86400) == "3.0 d"
    assert scaling.human_seconds(None) == "—"
