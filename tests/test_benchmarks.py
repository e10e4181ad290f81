"""The benchmark runner itself, on tiny sizes: it runs, records, and fails loudly."""

import json

import pytest

from benchmarks import run as bench
from jpasbatch.photometry import PhotometryResult, SyntheticPhotometry


def test_quick_photometry_benchmark_records_json_and_markdown(tmp_path):
    results = tmp_path / "results"
    assert bench.main(["--only", "photometry", "--quick", "--results-dir", str(results)]) == 0
    rec = json.loads((results / "photometry.json").read_text())
    assert rec["machine"]["cpu_count"] >= 1 and "--quick" in rec["command"]
    peer = next(r for r in rec["rows"] if "(peer)" in r["what"])
    ours = rec["rows"][0]
    assert rec["ratio_to_peer"] == pytest.approx(ours["per_s"] / peer["per_s"])
    assert ours["max_abs_dmag_vs_peer"] < 1e-3
    md = (tmp_path / "RESULTS.md").read_text()
    assert rec["title"] in md and f"{rec['ratio_to_peer']:.3g}x" in md


def test_a_wrong_fast_stage_fails_loudly(tmp_path, monkeypatch):
    original = SyntheticPhotometry.__call__

    def off_by_2_millimag(self, wavelength, flux, z=None):
        res = original(self, wavelength, flux, z)
        return PhotometryResult(res.flux, res.mag + 0.002, res.covered, res.bands)

    monkeypatch.setattr(SyntheticPhotometry, "__call__", off_by_2_millimag)
    with pytest.raises(bench.BenchmarkMismatch, match="differs from speclite"):
        bench.main(["--only", "photometry", "--quick", "--results-dir", str(tmp_path)])
    assert not list(tmp_path.glob("*.json"))


def test_quick_committee_benchmark_agrees_with_the_member_loop(tmp_path):
    results = tmp_path / "results"
    assert bench.main(["--only", "committee", "--quick", "--results-dir", str(results)]) == 0
    rec = json.loads((results / "committee.json").read_text())
    fp32, bf16, peer = rec["rows"]
    assert bf16["per_s"] > 0
    assert "(peer)" in peer["what"] and fp32["max_abs_dmag_vs_peer"] < 1e-4
    assert rec["ratio_to_peer"] == pytest.approx(fp32["per_s"] / peer["per_s"])
    assert rec["bf16_argmax_agreement"] > 0.95
