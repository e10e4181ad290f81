"""The job runner: spec validation, the whole pipeline on engines started by address, skips."""

from __future__ import annotations

import itertools
import json
import subprocess

import pandas as pd
import pytest
import yaml

from jpasbatch.core.errors import InputError
from jpasbatch.pipeline.job import load_job
from jpasbatch.pipeline.runner import plan
from jpasbatch.pipeline.specs import job_specs
from jpasbatch.pipeline.stages import STAGES
from jpasbatch.pipeline.state import STATE

TINY = {
    "name": "tiny",
    "simulate": {"area_deg2": 0.02, "fast": True, "seed": 3},
    "ingest": {"max_rows_per_partition": 400},
    "mocks": {"n_objects": 3000, "qso_boost": 10, "partition_rows": 1500, "embed_epochs": 2,
              "fast": True, "extras": True},
    "train": {"name": "ann", "members": 2, "hidden": 32, "layers": 2, "epochs": 2,
              "batch_size": 128},
    "foundation": {"name": "fm", "d_model": 16, "n_heads": 2, "enc_layers": 1, "enc_ffn": 32,
                   "dec_layers": 1, "dec_ffn": 32, "batch_size": 64, "steps_per_epoch": 4,
                   "epochs": 1, "max_val_rows": 200, "ray": False},
    "infer": {"targets": {"p_qso": 0.2, "mag_limit": 24}},
    "evaluate": {"protocols": ["natural"]},
}  # fmt: skip


def test_a_bad_spec_names_the_file_and_key(tmp_path):
    bad = TINY | {"train": TINY["train"] | {"epochz": 3}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(InputError, match=r"job\.yaml.*train\.epochz.*[Ee]xtra"):
        load_job(path)
    path.write_text(yaml.safe_dump(TINY | {"simulate": {"area_deg2": -1}}))
    with pytest.raises(InputError, match=r"simulate\.area_deg2.*greater than 0"):
        load_job(path)
    from jpasbatch.cli import main

    assert main(["run", str(path)]) == 2


def test_schemas_folder_has_every_spec():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "schemas"
    for name, model in job_specs().items():
        exported = json.loads((root / f"{name}_spec.schema.json").read_text())
        assert exported == json.loads(json.dumps(model.model_json_schema())), name


def test_shipped_jobs_validate():
    from pathlib import Path

    jobs = sorted((Path(__file__).resolve().parents[2] / "jobs").glob("*.yaml"))
    names = {p.stem for p in jobs}
    assert {"quickstart", "minijpas_like", "full_survey"} <= names
    stage_specs = {  # single-stage specs, read by their own commands
        "train_classifier": job_specs()["train"],
        "train_foundation": job_specs()["foundation_train"],
        "train_spectra": job_specs()["spectra_train"],
        "train_spectra_default": job_specs()["spectra_train"],
    }
    for path in jobs:
        if path.stem in stage_specs:
            stage_specs[path.stem].model_validate(yaml.safe_load(path.read_text()))
        else:
            assert load_job(path).stages()


def test_infer_without_train_uses_the_shipped_classifier(tmp_path, monkeypatch):
    import shutil

    from jpasbatch.core import defaults
    from jpasbatch.pipeline.stages import JobSpec, Paths

    catalogue = tmp_path / "archive.parquet"
    catalogue.write_bytes(b"only its checksum is read by plan()")
    job = JobSpec(workdir=tmp_path / "work", ingest={"inputs": [catalogue]}, infer={})
    assert Paths(job).model == defaults.default_model()  # as `jpasbatch infer` without --model
    # the VAC's fingerprint follows the shipped model's files, not only the code's hash
    copy = tmp_path / "classifier"
    shutil.copytree(defaults.default_model(), copy)
    monkeypatch.setattr(defaults, "default_model", lambda name=defaults.CLASSIFIER: copy)
    before = {p.stage: p.fingerprint for p in plan(job, state={})}
    (copy / "real_sky.json").write_text("{}")
    after = {p.stage: p.fingerprint for p in plan(job, state={})}
    assert before["ingest"] == after["ingest"] and before["infer"] != after["infer"]
    # a given model still wins over the shipped one
    given = job.model_copy(update={"infer": job.infer.model_copy(update={"model": catalogue})})
    assert Paths(given).model == catalogue


def test_a_stage_killed_midway_is_resumed_only_with_the_same_fingerprint(tmp_path):
    from jpasbatch.pipeline.stages import JobSpec

    catalogue = tmp_path / "archive.parquet"
    catalogue.write_bytes(b"only its checksum is read by plan()")
    job = JobSpec(workdir=tmp_path / "work", ingest={"inputs": [catalogue]}, infer={})
    fresh = {p.stage: p for p in plan(job, state={})}
    assert not any(p.resume for p in fresh.values())
    # what run_job leaves in the state when it is killed in the VAC
    killed = {"running": {"stage": "infer", "fingerprint": fresh["infer"].fingerprint}}
    again = {p.stage: p for p in plan(job, state=killed)}
    assert again["infer"].resume and again["infer"].action == "run"
    assert "interrupted" in again["infer"].reason and not again["ingest"].resume
    # other parameters (or inputs, or code): the partial output is not the stage's
    edited = job.model_copy(update={"infer": job.infer.model_copy(update={"batch_size": 7})})
    assert not any(p.resume for p in plan(edited, state=killed))
    assert not any(p.resume for p in plan(job, state=killed, start="infer"))  # --from: anew


def test_job_on_engines_started_by_address(tmp_path, dask_processes, ray_head, bin_dir):
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(TINY | {"workdir": str(tmp_path / "work")}))
    address, _ = dask_processes
    ray_address, ray_env = ray_head
    cmd = [bin_dir / "jpasbatch", "run", spec, "--dask-address", address, "--ray-address",
           ray_address]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ray_env)
    assert res.returncode == 0, res.stderr[-3000:]
    work = tmp_path / "work"
    for line in ("VAC", "QSO targets", "report"):
        assert line in res.stdout
    # not a terminal: log lines, no progress-bar redraws (hats-import's margin bars included)
    assert "\r" not in res.stdout + res.stderr
    state = json.loads((work / STATE).read_text())
    assert list(state["stages"]) == list(STAGES)
    # peak memory per stage: the driver's and each of the 2 workers' lifetime peak RSS, so
    # never lower in a later stage; a Python process with numpy and pandas holds > 50 MB
    peaks = [state["stages"][s]["peak_rss_gb"] for s in STAGES]
    for before, after in itertools.pairwise(peaks):
        assert len(after["workers"]) == 2 and after["workers"].keys() == before["workers"].keys()
        assert 0.05 < before["driver"] <= after["driver"] < 16
        for worker, gb in after["workers"].items():
            assert 0.05 < before["workers"][worker] <= gb < 16
    assert res.stderr.count("peak RSS so far (process lifetime): driver") == len(STAGES)  # the log
    summary = json.loads((work / "vac" / "vac_summary.json").read_text())
    ingested = json.loads((work / "catalogue" / "ingest_summary.json").read_text())
    assert summary["rows_in"] == ingested["rows_kept"]
    assert summary["rows_vac"] + summary["rows_rejected"] == summary["rows_in"]
    # training ran on the Ray cluster given by address, with its 2 workers
    history = pd.read_csv(work / "runs" / "ann" / "history.csv")
    assert set(history["workers"]) == {2}
    assert "VAC against the emulator's truth" in (work / "report.html").read_text()
    # the job's foundation model ran in the VAC; with no real-sky record Z_PHOT stays the fit's
    vac_meta = json.loads((work / "vac" / "provenance.json").read_text())
    assert vac_meta["z_phot_source"] == "template", vac_meta
    assert "foundation" in vac_meta["models"]
    vac = pd.read_parquet(work / "vac" / "dataset")
    assert vac["Z_PHOT_OJALA"].notna().all() and (vac["Z_PHOT"] == vac["Z_TEMPLATE"]).all()

    # unchanged: nothing to do
    job = load_job(spec)
    assert [p.action for p in plan(job)] == ["skip"] * 7
    # a classifier parameter changed: it and everything downstream rerun, not the foundation
    edited = job.model_copy(update={"train": job.train.model_copy(update={"epochs": 3})})
    assert [p.action for p in plan(edited)] == ["skip"] * 3 + ["run", "skip", "run", "run"]
    assert [p.action for p in plan(job, start="mocks")] == ["skip"] * 2 + ["run"] * 5
    # other code: nothing made by the old code is reused
    from jpasbatch.pipeline import runner

    real = runner.code_hash
    runner.code_hash = lambda: "another version"
    try:
        changed = plan(job)
    finally:
        runner.code_hash = real
    assert [p.action for p in changed] == ["run"] * 7
    assert changed[0].reason == "inputs, parameters or code changed"
    # --dry-run prints the plan and runs nothing
    res = subprocess.run([bin_dir / "jpasbatch", "run", spec, "--from", "infer", "--dry-run"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0 and "infer     run   --from infer" in res.stdout
    assert json.loads((work / STATE).read_text()) == state
