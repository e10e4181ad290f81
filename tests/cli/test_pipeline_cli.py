"""Every stage so far, end to end through the command line, on a small emulated field."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import f1_score

from jpasbatch.classify.data import read_labelled
from jpasbatch.classify.evaluate import predict
from jpasbatch.classify.load import load_model
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
    args += ["--extras", "--deep", "300"]  # the foundation model's columns and deep test sets
    assert main([*args, "--fast", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "mocks:" in out and "Test-Real / Test-Synth" in out and "report:" in out
    table = pq.read_table(mocks / "mocks").to_pandas()
    n_hybrids, n_other = (table.SPLIT == "train").sum(), (table.SPLIT != "train").sum()
    assert n_hybrids % 5 == 0 and n_hybrids // 5 + n_other == 4000
    assert len(pd.read_parquet(mocks / "test_synth.parquet")) == summary["xmatch"]
    assert len(pd.read_parquet(mocks / "test_real_deep.parquet")) == 300
    assert {"EW_HALPHA", "TEFF", "MORPH_TYPE", "CLASS_STAR"} <= set(table.columns)
    report = (mocks / "report" / "report.md").read_text()
    assert "similarity" in report and "depth" in report

    # train (in process: the Ray path has its own tests) and evaluate on Test-Real
    runs, ev = tmp_path / "runs", tmp_path / "eval"
    args = ["train", str(mocks / "mocks"), "--out", str(runs), "--name", "ann", "--no-ray"]
    assert main([*args, "--epochs", "2", "--members", "2", "--batch-size", "256"]) == 0
    assert main(["train", str(mocks / "mocks"), "--out", str(runs), "--name", "rf",
                 "--model", "forest"]) == 0  # fmt: skip
    models = [f"ann={runs / 'ann'}", f"rf={runs / 'rf' / 'forest.json'}"]
    test_real = str(mocks / "test_real.parquet")
    assert main(["evaluate", *models, "--test", test_real, "--split", "all", "--out", str(ev)]) == 0
    assert "report:" in capsys.readouterr().out
    html = (ev / "report.html").read_text()
    assert "ann/report.html" in html and "rf/report.html" in html
    summary = pd.read_csv(ev / "summary.csv").set_index("model")
    p, d, w = predict(load_model(runs / "rf" / "forest.json"), read_labelled([test_real]))
    expected = f1_score(d.y, p.argmax(1), average="weighted", labels=np.arange(4), sample_weight=w)
    assert abs(summary.loc["rf", "weighted_f1"] - expected) < 1e-9
