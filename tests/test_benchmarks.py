"""`python -m benchmarks.run` (the wrapper over `jpasbatch bench`) on tiny sizes."""

import json

import pytest

from benchmarks import run as bench
from jpasbatch.physics.photometry import PhotometryResult, SyntheticPhotometry


def test_tiny_photometry_benchmark_records_json_report_and_results_md(tmp_path):
    results = tmp_path / "results"
    args = ["--only", "photometry", "--preset", "tiny", "--workers", "1", "--repeats", "1",
            "--results-dir", str(results)]  # fmt: skip
    assert bench.main(args) == 0
    rec = json.loads((results / "photometry.json").read_text())
    assert rec["machine"]["cpu_count"] >= 1 and "--preset tiny" in rec["command"]
    assert rec["command"].startswith("python -m benchmarks.run")
    ours = [r for r in rec["rows"] if r["impl"] == "ours"]
    peer = [r for r in rec["rows"] if r["impl"] == "peer"]
    assert ours and peer and all(r["max_abs_diff_vs_peer"] < 1e-3 for r in ours)
    top = max(ours, key=lambda r: r["n"])
    ref = next(r for r in peer if r["n"] == top["peer_n"])
    assert rec["ratio_to_peer"] == pytest.approx(top["per_s"] / ref["per_s"])
    md = (tmp_path / "RESULTS.md").read_text()
    assert rec["title"] in md and f"{rec['ratio_to_peer']:.3g}x" in md
    assert rec["goal"] in md and "Full-survey projection" in md
    assert (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "report" / "photometry.png").exists()


def test_a_wrong_fast_stage_fails_loudly(tmp_path, monkeypatch):
    original = SyntheticPhotometry.__call__

    def off_by_2_millimag(self, wavelength, flux, z=None):
        res = original(self, wavelength, flux, z)
        return PhotometryResult(res.flux, res.mag + 0.002, res.covered, res.bands)

    monkeypatch.setattr(SyntheticPhotometry, "__call__", off_by_2_millimag)
    with pytest.raises(bench.BenchmarkMismatch, match="differs from speclite"):
        bench.main(["--only", "photometry", "--preset", "tiny", "--workers", "1",
                    "--repeats", "1", "--results-dir", str(tmp_path)])  # fmt: skip
    assert not list(tmp_path.glob("*.json"))


def test_tiny_committee_benchmark_agrees_with_the_member_loop(tmp_path):
    results = tmp_path / "results"
    args = ["--only", "committee", "--preset", "tiny", "--workers", "1,2", "--repeats", "1",
            "--results-dir", str(results)]  # fmt: skip
    assert bench.main(args) == 0
    rec = json.loads((results / "committee.json").read_text())
    ours = [r for r in rec["rows"] if r["impl"] == "ours"]
    assert all(r["max_abs_diff_vs_peer"] < 1e-4 for r in ours)
    assert {r["workers"] for r in ours} == {1, 2}
    [bf16] = [r for r in rec["rows"] if r["impl"] == "variant"]
    assert bf16["per_s"] > 0 and rec["bf16_argmax_agreement"] > 0.95
    assert rec["strong_scaling"]["points"][1]["workers"] == 2
