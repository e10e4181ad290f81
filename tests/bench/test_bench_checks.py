"""Each stage's answer check: right answers pass, wrong ones raise BenchmarkMismatch.

These are the checks that stop a fast wrong stage from "winning"; here they
get hand-made answers (no engines), so every one of them is seen to fail.
"""

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jpasbatch.bench.core import BenchmarkMismatch, Outcome
from jpasbatch.bench.stage import STAGES, get_stage


def test_every_registered_stage_imports_and_names_its_goal():
    for name in STAGES:
        stage = get_stage(name)
        assert stage.name == name and stage.goal and stage.issue in range(2, 30)
        assert all(len(s) >= 1 for s in stage.sizes)


def test_photometry_check():
    stage = get_stage("photometry")
    mag = np.random.default_rng(0).uniform(18, 24, (20, 60))
    assert stage.compare(Outcome(mag + 5e-4), Outcome(mag[:10]), 10, 1) == pytest.approx(5e-4)
    with pytest.raises(BenchmarkMismatch, match="differs from speclite"):
        stage.compare(Outcome(mag + 2e-3), Outcome(mag[:10]), 10, 1)


def test_similarity_check():
    stage = get_stage("similarity")
    match = np.arange(2000)
    inside = np.ones(2000, bool)
    inside[:5] = False  # mocks outside the observed bins are not compared
    ref = Outcome({"inside": inside, "match": match[inside]})
    wrong = match.copy()
    wrong[:5] = -1
    assert stage.compare(Outcome(wrong), ref, 2000, 1) == 0.0
    wrong[10:20] = -1  # 0.5% other neighbours
    with pytest.raises(BenchmarkMismatch, match="agrees with brute force"):
        stage.compare(Outcome(wrong), ref, 2000, 1)


def _mock_table(n, seed=0):
    rng = np.random.default_rng(seed)
    cols = {"OBJECT_ID": np.arange(n), "CLASS": rng.choice(["STAR", "GALAXY"], n),
            "Z": rng.random(n), "MAG_R": rng.random(n).astype(np.float32),
            "WEIGHT": rng.random(n), "SPLIT": np.full(n, "train"),
            "FLUX_rSDSS": rng.random(n).astype(np.float32)}  # fmt: skip
    return pa.table(cols)


@pytest.mark.parametrize("change", ["none", "class", "flux_few", "flux_many", "rows"])
def test_mocks_check(tmp_path, change):
    stage = get_stage("mocks")
    table = _mock_table(400)
    out = tmp_path / f"mocks-{change}"
    out.mkdir()
    got = table
    if change == "class":
        got = got.set_column(1, "CLASS", pa.array(np.full(400, "STAR")))
    elif change in ("flux_few", "flux_many"):
        flux = got["FLUX_rSDSS"].to_numpy().copy()
        flux[: 2 if change == "flux_few" else 40] += 1  # 0.5% or 10% of rows
        got = got.set_column(6, "FLUX_rSDSS", pa.array(flux))
    elif change == "rows":
        got = got.slice(0, 399)
    pq.write_table(got.slice(0, 200), out / "part-00000.parquet")
    pq.write_table(got.slice(200), out / "part-00001.parquet")
    config = SimpleNamespace(n_objects=400, partition_rows=200)
    ours = Outcome({"rows": 400, "out": out, "config": config})
    if change in ("none", "flux_few"):
        assert stage.compare(ours, Outcome(table), 400, 2) == pytest.approx(
            0.0 if change == "none" else 0.005
        )
        assert not out.exists()  # the run's output is removed once checked
    else:
        with pytest.raises(BenchmarkMismatch, match="mocks"):
            stage.compare(ours, Outcome(table), 400, 2)


def test_ingest_check_counts_rows_from_the_files(tmp_path):
    stage = get_stage("ingest")

    def output(kept, rejected):
        out = tmp_path / f"cat{kept}"
        (out / "dataset" / "Norder=0").mkdir(parents=True)
        (out / "rejects").mkdir()
        pq.write_table(pa.table({"x": np.arange(kept)}), out / "dataset" / "Norder=0" / "a.parquet")
        pq.write_table(pa.table({"x": np.arange(rejected)}), out / "rejects" / "r.parquet")
        return Outcome({"in": 100, "out": out})

    assert stage.compare(output(90, 10), Outcome(100), 100, 2) == 0.0
    with pytest.raises(BenchmarkMismatch, match="ingest read 100 rows"):
        stage.compare(output(89, 10), Outcome(100), 100, 2)


def test_training_check():
    stage = get_stage("training")
    loss = np.array([1.2, 0.8, 0.5])
    one = Outcome({"loss": loss, "f1": 0.95})
    assert stage.compare(Outcome({"loss": loss * (1 + 1e-6), "f1": 0.9}), one, 100, 1) < 1e-5
    with pytest.raises(BenchmarkMismatch, match="losses differ"):
        stage.compare(Outcome({"loss": loss * 1.01, "f1": 0.95}), one, 100, 1)
    assert stage.compare(Outcome({"loss": loss * 1.5, "f1": 0.93}), one, 100, 2) == pytest.approx(
        0.02
    )
    with pytest.raises(BenchmarkMismatch, match="validation F1"):
        stage.compare(Outcome({"loss": loss, "f1": 0.80}), one, 100, 2)


def test_committee_and_spectral_checks():
    p = np.random.default_rng(1).dirichlet(np.ones(4), 50)
    for name in ("committee", "spectral"):
        stage = get_stage(name)
        assert stage.compare(Outcome(p + 1e-6), Outcome(p), 50, 1) == pytest.approx(1e-6)
        with pytest.raises(BenchmarkMismatch, match="member loop|ensemble paths"):
            stage.compare(Outcome(p + 1e-3), Outcome(p), 50, 1)


def test_vac_check(tmp_path):
    stage = get_stage("vac")
    parts = [pa.table({"P_QSO_HIGH": np.random.default_rng(k).random(10)}) for k in range(2)]

    def output(tables, rows_vac=20, tag=""):
        out = tmp_path / f"vac{tag}"
        (out / "dataset").mkdir(parents=True)
        for k, t in enumerate(tables):
            pq.write_table(t, out / "dataset" / f"{k:05d}.parquet")
        summary = {"rows_vac": rows_vac, "rows_rejected": 0}
        return Outcome({"summary": summary, "out": out})

    assert stage.compare(output(parts), Outcome(parts), 20, 2) == 0.0
    shifted = [
        parts[0],
        parts[1].set_column(0, "P_QSO_HIGH", pa.array(parts[1][0].to_numpy() + 1e-3)),
    ]
    with pytest.raises(BenchmarkMismatch, match="probabilities differ"):
        stage.compare(output(shifted, tag="b"), Outcome(parts), 20, 2)
    with pytest.raises(BenchmarkMismatch, match="lost rows"):
        stage.compare(output(parts, rows_vac=19, tag="c"), Outcome(parts), 20, 2)


def test_transformer_check_is_against_the_same_model_in_small_batches():
    stage = get_stage("transformer")
    ref = np.random.default_rng(2).random((32, 5))
    p = np.vstack([ref + 1e-6, np.zeros((10, 5))])
    assert stage.compare(Outcome({"p": p, "ref": ref}), Outcome(None), 42, 1) < 1e-5
    with pytest.raises(BenchmarkMismatch, match="batches of 8"):
        stage.compare(Outcome({"p": p + 1e-2, "ref": ref}), Outcome(None), 42, 1)
    p[40, 0] = np.nan
    with pytest.raises(BenchmarkMismatch, match="non-finite"):
        stage.compare(Outcome({"p": p, "ref": ref}), Outcome(None), 42, 1)


def test_transformer_ceiling_records_every_matrix_product():
    import torch

    from jpasbatch.bench.stages.transformer import matmul_calls, replay

    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    x = torch.randn(4, 7, 3)

    def shapes(args):
        return [
            shapes(a) if isinstance(a, list) else tuple(a.shape) for a in args if a != "bij,jk->bik"
        ]

    expected = {  # autograd decomposes linear / einsum, inference mode does not
        torch.no_grad: [[(5,), (28, 3), (3, 5)], [(2,), (28, 5), (5, 2)], [(1, 28, 2), (1, 2, 6)]],
        torch.inference_mode: [
            [(4, 7, 3), (5, 3), (5,)], [(4, 7, 5), (2, 5), (2,)], [[(4, 7, 2), (2, 6)]]
        ],
    }  # fmt: skip
    for mode, want in expected.items():
        with mode():
            calls = matmul_calls(lambda: torch.einsum("bij,jk->bik", net(x), torch.ones(2, 6)))
        assert [shapes(args) for _, args in calls] == want
        replay(calls, 2)


def test_transformer_goal_is_judged_without_the_ceiling():
    stage = get_stage("transformer")
    row = {"impl": "ours", "n": 100, "workers": 2, "per_s": 900.0}
    ceiling = {"impl": "variant", "what": "its bf16 matrix products alone (ceiling)"}
    bf16 = {"impl": "variant", "what": "bf16", "n": 100, "workers": 2}
    met, note = stage.goal_check(
        {"rows": [row, bf16 | {"per_s": 1500.0}, ceiling | {"per_s": 2500.0}]}
    )
    assert met is False and "1,500 bf16" in note and "2,500/s" in note
    met, _ = stage.goal_check(
        {"rows": [row, bf16 | {"per_s": 2100.0}, ceiling | {"per_s": 2500.0}]}
    )
    assert met is True


def test_spectral_refine_check():
    stage = get_stage("spectral_refine")
    # class code, z, DELTACHI2 (the scan's; ours carries none)
    peer = np.array([[1, 0.5, 100], [2, 2.0, 100], [0, 0.0, 100], [1, 0.3, 5]])
    ours = peer.copy()
    ours[:, 2] = 0
    ours[3, 1] = 0.9  # the scan is not sure of this one: not counted
    assert stage.compare(Outcome(ours), Outcome(peer), 4, 1) == 0.0
    ours[0, 1] = 0.6  # one sure spectrum of three elsewhere: recorded, below the goal
    assert stage.compare(Outcome(ours), Outcome(peer), 4, 1) == pytest.approx(1 / 3)
    ours[1, 0] = 1  # two of three: broken, the run stops
    with pytest.raises(BenchmarkMismatch, match="reaches the scan's minimum"):
        stage.compare(Outcome(ours), Outcome(peer), 4, 1)
