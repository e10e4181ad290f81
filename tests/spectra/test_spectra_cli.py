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
    # refined by default, on a local Dask cluster
    assert main(["spectra", *files, "--model", str(model), "--out", str(out),
                 "--workers", "1"]) == 0  # fmt: skip
    table = pd.read_parquet(out)
    assert len(table) == 6 and table["ID"].is_unique
    need = {"P_STAR", "P_GALAXY", "P_QSO", "CLASS", "Z", "Z_ERR", "ROBUST", "Z_FNET",
            "Z_REF", "CLASS_REF", "DV_KMS", "SNR", "Z_NET", "Z_NET_ERR", "SPECTYPE",
            "DELTACHI2", "ZWARN"}  # fmt: skip
    assert need <= set(table.columns)
    expect = 299792.458 * (table["Z"] - table["Z_REF"]) / (1 + table["Z_REF"])
    assert np.allclose(table["DV_KMS"], expect)
    assert set(table["SPECTYPE"]) <= {"STAR", "GALAXY", "QSO"}
    assert main(["spectra", *files[:2], "--model", str(model), "--out", str(tmp_path / "p.csv"),
                 "--no-progress", "--no-refine"]) == 0  # fmt: skip
    plain = pd.read_csv(tmp_path / "p.csv")
    assert len(plain) == 2 and "SPECTYPE" not in plain
    # the network's answer is kept beside the refined one
    assert np.allclose(plain["Z"], table["Z_NET"][:2], atol=1e-5)

    report = tmp_path / "eval"
    assert main(["spectra-evaluate", str(tiny_emulated), "--model", str(model), "--out",
                 str(report), "--split", "all", "--no-refine"]) == 0  # fmt: skip
    assert (report / "report.html").exists() and (report / "confusion.png").exists()
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["summary"]["n"] == 90 and np.array(metrics["confusion"]).sum() == 90
    assert "FNet DR16Q" in (report / "report.html").read_text()

    # real sets: files read as `spectra` reads them, scored against labels.csv
    sets = tmp_path / "real" / "sdss_like"
    (sets / "spectra").mkdir(parents=True)
    for p in sdss_files:
        (sets / "spectra" / p.name).write_bytes(p.read_bytes())
    pd.DataFrame({"file": [p.name for p in sdss_files], "CLASS": table["CLASS_REF"],
                  "Z": table["Z_REF"]}).to_csv(sets / "labels.csv", index=False)  # fmt: skip
    real = tmp_path / "eval_real"
    assert main(["spectra-evaluate", str(tmp_path / "real"), "--real", "--model", str(model),
                 "--out", str(real), "--no-refine"]) == 0  # fmt: skip
    scored = pd.read_parquet(real / "predictions.parquet")
    assert len(scored) == 6 and set(scored["SET"]) == {"sdss_like"}
    assert set(scored["CLASS_TRUE"]) <= {"STAR", "GALAXY", "QSO"}

    # published with its card and checksums, loaded from there without pickle
    pub = tmp_path / "published"
    assert main(["spectra-publish", str(model), "--job", str(spec), "--evaluation",
                 f"tiny={report}", "--recipe", "jpasbatch spectra-train ...",
                 "--dest", str(pub)]) == 0  # fmt: skip
    from jpasbatch.core import defaults
    from jpasbatch.spectra.predict import SpectraModel

    defaults.verify(pub)
    card = json.loads((pub / "CARD.json").read_text())
    assert card["recipe"]["job_text"] == spec.read_text()
    assert card["evaluations"]["tiny"][0]["stage"] == "network"
    assert SpectraModel.load(pub).classes == ["STAR", "GALAXY", "QSO"]

    # a file that cannot be read: one line naming it, exit status 2
    bad = tmp_path / "bad.fits"
    bad.write_text("not a spectrum")
    capsys.readouterr()
    assert (
        main(["spectra", str(bad), "--model", str(model), "--out", str(tmp_path / "x.parquet")])
        == 2
    )
    assert "no spectrum could be read" in capsys.readouterr().err


def test_stage_table_puts_network_and_refined_side_by_side(tmp_path):
    from jpasbatch.spectra.evaluate import stage_table
    from jpasbatch.spectra.report import evaluation_report

    z_true = np.array([0.0, 0.5, 0.5, 2.0, 2.0, 1.0])
    table = pd.DataFrame({
        "CLASS_TRUE": ["STAR", "GALAXY", "GALAXY", "QSO", "QSO", "QSO"],
        "Z_TRUE": z_true,
        "CLASS": ["STAR", "GALAXY", "QSO", "QSO", "QSO", "QSO"],
        "P_STAR": [0.9, 0.1, 0.1, 0, 0, 0], "P_GALAXY": [0.1, 0.8, 0.3, 0.2, 0.1, 0.1],
        "P_QSO": [0, 0.1, 0.6, 0.8, 0.9, 0.9],
        "Z_NET": z_true + np.array([0, 0.05, 0.05, 0.1, 0.0, 0.0]),
        "Z_NET_ERR": [0.0, 0.1, 0.1, 0.01, 0.05, 0.05],
        "SPECTYPE": ["STAR", "GALAXY", "GALAXY", "QSO", "QSO", "GALAXY"],
        "Z": z_true + np.array([0, 0.001, 0.002, 0.0005, 0.04, 0.0]),
        "Z_ERR": [1e-4, 0.0005, 0.0005, 0.001, 0.001, 0.001],
        "ZWARN": [0, 0, 0, 0, 4, 0], "SNR": 5.0, "Z_GALAXY": z_true, "Z_GALAXY_ERR": 0.1,
        "Z_QSO": z_true, "Z_QSO_ERR": 0.1,
    })  # fmt: skip
    st = stage_table(table).set_index(["stage", "class"])
    assert st.loc[("network", "GALAXY"), "accuracy"] == 0.5
    assert st.loc[("refined", "GALAXY"), "accuracy"] == 1.0
    # refined galaxies: dv 200 and 400 km/s; QSOs: 50, 4000 and 0 km/s but one a galaxy
    assert st.loc[("refined", "GALAXY"), "dv1000"] == 1.0
    assert st.loc[("refined", "QSO"), "dv6000"] == 1.0
    assert st.loc[("refined", "QSO"), "dv1000"] == pytest.approx(2 / 3)
    assert st.loc[("refined", "QSO"), "catastrophic"] == pytest.approx(2 / 3)
    assert st.loc[("refined", "QSO"), "within1"] == pytest.approx(2 / 3)
    assert st.loc[("network", "QSO"), "dv6000"] == pytest.approx(2 / 3)
    assert st.loc[("refined", "all"), "zwarn0"] == pytest.approx(5 / 6)
    res = evaluation_report(table, tmp_path / "rep")
    assert "Network alone and refined" in (tmp_path / "rep" / "report.html").read_text()
    assert (tmp_path / "rep" / "network_vs_refined.csv").exists() and len(res["stages"]) == 8


@pytest.mark.slow  # starts its own Dask cluster; prepare on Dask is tested on `client`
def test_cli_prepare(sdss_files, tmp_path):
    out = tmp_path / "prepared"
    files = [str(p) for p in sdss_files]
    assert main(["spectra-prepare", *files, "--out", str(out), "--workers", "1",
                 "--files-per-partition", "4"]) == 0  # fmt: skip
    assert len(list((out / "index").glob("part-*.parquet"))) == 2
