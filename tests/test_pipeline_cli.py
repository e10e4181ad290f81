"""Every stage so far, end to end through the command line, on a small emulated field."""

import json

import pandas as pd
import pyarrow.parquet as pq

from jpasbatch.cli import main


def test_simulate_ingest_mocks_report(tmp_path, capsys):
    sim, cat, mocks = tmp_path / "sim", tmp_path / "cat", tmp_path / "mocks"
    assert main(["simulate", "--area", "0.05", "--out", str(sim), "--fast", "--workers", "1"]) == 0
    summary = json.loads((sim / "simulate_summary.json").read_text())
    assert summary["rows"] > 1000 and set(summary["classes"]) >= {"STAR", "GALAXY"}

    files = [str(p) for p in sorted((sim / "catalogue").glob("*.parquet"))]
    assert main(["ingest", *files, "--out", str(cat), "--workers", "1"]) == 0
    ingest = json.loads((cat / "ingest_summary.json").read_text())
    assert ingest["rows_in"] == summary["rows"] == ingest["rows_kept"] + ingest["rows_rejected"]

    args = ["mocks", "--out", str(mocks), "--observed", str(cat), "--sim", str(sim)]
    args += ["--n-objects", "4000", "--partition-rows", "2000", "--hybridise", "--report"]
    assert main([*args, "--fast", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "mocks:" in out and "Test-Real / Test-Synth" in out and "report:" in out
    table = pq.read_table(mocks / "mocks").to_pandas()
    n_hybrids, n_other = (table.SPLIT == "train").sum(), (table.SPLIT != "train").sum()
    assert n_hybrids % 5 == 0 and n_hybrids // 5 + n_other == 4000
    assert len(pd.read_parquet(mocks / "test_synth.parquet")) == summary["xmatch"]
    report = (mocks / "report" / "report.md").read_text()
    assert "similarity" in report and "depth" in report
