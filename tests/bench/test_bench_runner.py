"""The runner on a toy stage: plan, records, report, and loud failure on a wrong answer."""

import json

import numpy as np
import pytest

from jpasbatch.bench import runner
from jpasbatch.bench.core import BenchmarkMismatch, Outcome
from jpasbatch.bench.spec import BenchSpec
from jpasbatch.bench.stage import STAGES, Sizes, Stage
from jpasbatch.cli import main as cli_main


class ToyStage(Stage):
    """Sum of squares: numpy (the stage) against a Python loop (the peer)."""

    name = "toy"
    title = "Toy: sum of squares"
    unit = "numbers"
    issue = 0
    goal = "at least 1e12 numbers/s"
    engine = "threads"
    sizes = Sizes(tiny=(1000, 4000), quick=(1000, 4000), full=(1000, 4000))
    peer_cap = 2000
    ours_label = "numpy"
    peer_label = "python loop"

    def prepare(self, n, ctx):
        return np.arange(n, dtype=np.float64)

    def run(self, data, ctx):
        return Outcome(np.cumsum(data**2))

    def peer(self, data, n, ctx):
        out, total = [], 0.0
        for x in data[:n].tolist():
            total += x * x
            out.append(total)
        return Outcome(np.array(out))

    def compare(self, ours, peer, n, workers):
        diff = float(np.max(np.abs(ours.answer[:n] - peer.answer) / peer.answer.clip(1)))
        if diff > 1e-12:
            raise BenchmarkMismatch(f"toy differs by {diff}")
        return diff

    def goal_check(self, rec):
        best = max(r["per_s"] for r in rec["rows"] if r["impl"] == "ours")
        return best >= 1e12, f"{best:.3g} numbers/s"


class WrongToy(ToyStage):
    name = "wrongtoy"

    def run(self, data, ctx):  # fast and wrong
        return Outcome(np.cumsum(data**2) * (1 + 1e-9))


@pytest.fixture
def toys(monkeypatch):
    monkeypatch.setitem(STAGES, "toy", ToyStage)
    monkeypatch.setitem(STAGES, "wrongtoy", WrongToy)


def test_plan_covers_size_sweep_strong_and_weak_scaling():
    points, base = runner.plan([1000, 8000], [1, 2, 4])
    assert base == 2000
    assert points == {1000: [1, 4], 2000: [1], 4000: [2], 8000: [1, 2, 4]}


def test_toy_run_records_every_point_and_reports_the_goal(tmp_path, toys):
    spec = BenchSpec(out=tmp_path / "out", stages=["toy"], preset="tiny", workers=[1, 2],
                     repeats=2, command="jpasbatch bench --stages toy")  # fmt: skip
    run = runner.run_bench(spec, progress_print=lambda *_: None)
    rec = json.loads((tmp_path / "out" / "records" / "toy.json").read_text())
    assert run["stages"] == ["toy"] and run["command"] == "jpasbatch bench --stages toy"
    assert rec["command"] == "jpasbatch bench --stages toy"
    assert rec["machine"]["cpu_count"] >= 1 and rec["versions"]["numpy"] == np.__version__
    assert "threads" in rec["engines"]
    ours = {(r["n"], r["workers"]) for r in rec["rows"] if r["impl"] == "ours"}
    assert ours == {(1000, 1), (1000, 2), (2000, 1), (4000, 1), (4000, 2)}
    peers = {(r["n"], r["workers"]) for r in rec["rows"] if r["impl"] == "peer"}
    assert peers == {(1000, 1), (2000, 1), (2000, 2)}  # capped at 2,000; scales at the top
    for r in rec["rows"]:
        assert r["repeats"] == 2 and r["min_s"] <= r["median_s"] <= r["max_s"]
        assert r["peak_memory_per_worker_gb"] > 0
    # the ratio at the top: ours at (4000, 2) against the peer on 2,000 items with 2 workers
    top = next(r for r in rec["rows"] if (r["impl"], r["n"], r["workers"]) == ("ours", 4000, 2))
    peer = next(r for r in rec["rows"] if (r["impl"], r["n"], r["workers"]) == ("peer", 2000, 2))
    assert rec["ratio_to_peer"] == pytest.approx(top["per_s"] / peer["per_s"])
    assert [p["workers"] for p in rec["strong_scaling"]["points"]] == [1, 2]
    assert rec["weak_scaling"]["base_n"] == 2000
    assert rec["goal_met"] is False
    md = (tmp_path / "out" / "report.md").read_text()
    assert "at least 1e12 numbers/s" in md and "**NOT met**" in md
    assert "Full-survey projection: 40,000,000 objects on 16 nodes x 32 cores" in md
    assert f"{rec['ratio_to_peer']:.3g}x" in md
    assert (tmp_path / "out" / "toy.png").stat().st_size > 0
    assert (tmp_path / "out" / "overview.png").stat().st_size > 0


def test_a_wrong_fast_stage_fails_loudly_and_writes_no_record(tmp_path, toys, capsys):
    args = ["bench", "--stages", "wrongtoy", "--preset", "tiny", "--workers", "1",
            "--repeats", "1", "--out", str(tmp_path)]  # fmt: skip
    assert cli_main(args) == 3
    assert "MISMATCH" in capsys.readouterr().err
    assert not list(tmp_path.rglob("wrongtoy.json"))
    with pytest.raises(BenchmarkMismatch, match="toy differs"):
        runner.run_bench(BenchSpec(out=tmp_path, stages=["wrongtoy"], preset="tiny", workers=[1]))


def test_cli_flags_make_the_spec_and_report_only_redraws(tmp_path, toys):
    args = ["bench", "--stages", "toy", "--sizes", "toy=500,1000", "--workers", "1",
            "--repeats", "1", "--no-warmup", "--project-nodes", "2", "--project-cores", "4",
            "--project-memory-gb", "8", "--out", str(tmp_path)]  # fmt: skip
    assert cli_main(args) == 0
    rec = json.loads((tmp_path / "records" / "toy.json").read_text())
    assert sorted({r["n"] for r in rec["rows"] if r["impl"] == "ours"}) == [500, 1000]
    assert "--sizes toy=500,1000" in rec["command"]
    (tmp_path / "report.md").unlink()
    assert cli_main(["bench", "--report-only", "--project-nodes", "3", "--out", str(tmp_path)]) == 0
    assert "on 3 nodes x 32 cores" in (tmp_path / "report.md").read_text()


def test_unknown_stage_is_a_one_line_error(tmp_path, capsys):
    assert cli_main(["bench", "--stages", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown stage 'nope'" in capsys.readouterr().err
