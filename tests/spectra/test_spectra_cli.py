"""The spectral commands end to end on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from jpasbatch.cli import main


def test_cli_train_predict_evaluate(tiny_emulated, sdss_files, tmp_path, tiny, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**tiny, "data": str(tiny_emulated)}))
    runs = tmp_path / "runs"
    assert main(["spectra-train", "--spec", str(spec), "--out", str(runs), "--no-ray"]) == 0
    model = runs / "spectra"
    assert (model / "model.json").exists()

    out = tmp_path / "pred.parquet"
    files = [str(p) for p in sdss_files]
    assert main(["spectra", *files, "--model", str(model), "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert len(table) == 6 and table["ID"].is_unique
    need = {"P_STAR", "P_GALAXY", "P_QSO", "CLASS", "Z", "Z_ERR", "ROBUST", "Z_FNET",
            "Z_REF", "CLASS_REF", "DV_KMS", "SNR"}  # fmt: skip
    assert need <= set(table.columns)
    expect = 299792.458 * (table["Z"] - table["Z_REF"]) / (1 + table["Z_REF"])
    assert np.allclose(table["DV_KMS"], expect)
    assert main(["spectra", *files[:2], "--model", str(model), "--out", str(tmp_path / "p.csv"),
                 "--no-progress"]) == 0  # fmt: skip
    assert len(pd.read_csv(tmp_path / "p.csv")) == 2

    report = tmp_path / "eval"
    assert main(["spectra-evaluate", str(tiny_emulated), "--model", str(model), "--out",
                 str(report), "--split", "all"]) == 0  # fmt: skip
    assert (report / "report.html").exists() and (report / "confusion.png").exists()
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["summary"]["n"] == 90 and np.array(metrics["confusion"]).sum() == 90
    assert "FNet DR16Q" in (report / "report.html").read_text()

    # a file that cannot be read: one line naming it, exit status 2
    bad = tmp_path / "bad.fits"
    bad.write_text("not a spectrum")
    capsys.readouterr()
    assert (
        main(["spectra", str(bad), "--model", str(model), "--out", str(tmp_path / "x.parquet")])
        == 2
    )
    assert "no spectrum could be read" in capsys.readouterr().err


@pytest.mark.slow  # starts its own Dask cluster; prepare on Dask is tested on `client`
def test_cli_prepare(sdss_files, tmp_path):
    out = tmp_path / "prepared"
    files = [str(p) for p in sdss_files]
    assert main(["spectra-prepare", *files, "--out", str(out), "--workers", "1",
                 "--files-per-partition", "4"]) == 0  # fmt: skip
    assert len(list((out / "index").glob("part-*.parquet"))) == 2
