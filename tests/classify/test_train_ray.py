"""Ray Train: a 2-worker CPU run, sharded reading, and resume after a killed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.data import read_labelled
from jpasbatch.classify.train import TrainSpec, train

ARCH = {"members": 3, "hidden": 64, "layers": 3, "batch_size": 64, "lr": 3e-3}


def test_shards_partition_the_rows(toy_mocks):
    whole = read_labelled([toy_mocks], ["train"])
    shards = [read_labelled([toy_mocks], ["train"], rank=r, world=2) for r in range(2)]
    ids = np.concatenate([s.object_id for s in shards])
    assert len(ids) == len(whole) and set(ids) == set(whole.object_id)
    assert not set(shards[0].object_id) & set(shards[1].object_id)
    # more workers than row groups: every-world-th row instead, still a partition
    many = [read_labelled([toy_mocks], ["train"], rank=r, world=7) for r in range(7)]
    assert sorted(np.concatenate([s.object_id for s in many])) == sorted(whole.object_id)


def test_two_worker_cpu_run(ray_session, toy_mocks, tmp_path, monkeypatch):
    import logging

    from jpasbatch.distribute import ray as raytrain

    # the driver logs each epoch as its checkpoint appears
    monkeypatch.setattr(raytrain, "EPOCH_POLL", 0.05)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("jpasbatch.distribute.ray")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "level", logging.INFO)
    spec = TrainSpec(train=[toy_mocks], out=tmp_path, name="two", workers=2, epochs=3, **ARCH)
    try:
        clf = Classifier.load(train(spec))
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records if r.getMessage().startswith("epoch")]
    assert lines and all("val_weighted_f1" in line for line in lines)
    history = pd.read_csv(tmp_path / "two" / "history.csv")
    assert list(history["workers"]) == [2, 2, 2] and list(history["epoch"]) == [1, 2, 3]
    assert clf.meta["best_val_weighted_f1"] > 0.8
    assert clf.model.members == 3


def _checkpoints(run_dir):
    return sorted(run_dir.glob("checkpoint_*/state.json")) if run_dir.exists() else []


@pytest.mark.slow  # `make test-slow`: keeps `make test` within 15 min on 2 cores
def test_killed_run_resumes_from_its_last_checkpoint(ray_session, toy_mocks, tmp_path):
    fields = {"train": [str(toy_mocks)], "out": str(tmp_path), "name": "resume", "workers": 2,
              "epochs": 40, "patience": 40, "max_failures": 0, **ARCH}  # fmt: skip
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(fields))
    cmd = [sys.executable, "-m", "jpasbatch.cli", "train", "--spec", str(tmp_path / "spec.yaml")]
    env = os.environ | {"RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    run_dir = tmp_path / "resume"
    deadline = time.time() + 240
    while len(_checkpoints(run_dir)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, its local Ray cluster and workers
    proc.wait()
    assert len(_checkpoints(run_dir)) >= 2, "the first run never checkpointed"
    assert not (run_dir / "model.json").exists(), "the first run finished before the kill"
    from jpasbatch.core.modelio import load_tree

    last = load_tree(_checkpoints(run_dir)[-1])
    done = last["epoch"]
    assert 1 <= done < 40
    # rerun with the same out / name (fewer epochs, to keep the test short)
    spec = TrainSpec(**(fields | {"epochs": done + 2}))
    train(spec)
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == list(range(1, done + 3))
    # epochs up to the checkpoint come from it, not from a new run
    np.testing.assert_array_equal(history["loss"][:done], [m["loss"] for m in last["history"]])


@pytest.mark.slow  # `make test-slow`: keeps `make test` within 15 min on 2 cores
def test_a_killed_worker_is_retried_from_the_checkpoint(ray_session, toy_mocks, tmp_path):
    import threading

    import psutil

    spec = TrainSpec(train=[toy_mocks], out=tmp_path, name="retry", workers=2, epochs=25,
                     patience=25, max_failures=1, **ARCH)  # fmt: skip
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("path", train(spec)))
    thread.start()
    run_dir = tmp_path / "retry"
    deadline = time.time() + 240
    while not _checkpoints(run_dir) and time.time() < deadline:
        time.sleep(0.2)
    workers = [p for p in psutil.process_iter(["cmdline"])
               if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])]  # fmt: skip
    assert workers, "no Ray Train worker process found"
    workers[0].kill()  # a node failure, as far as Ray Train can tell
    thread.join(timeout=300)
    assert "path" in result, "the run did not recover from the killed worker"
    history = pd.read_csv(run_dir / "history.csv")
    # the retry resumed from a checkpoint: every epoch appears once, in order
    assert list(history["epoch"]) == list(range(1, len(history) + 1))
    assert len(history) == 25


def test_the_command_keeps_ray_start_up_quiet_and_logs_epochs(toy_mocks, tmp_path, bin_dir):
    # Ray resets its logger when it starts: without -v its start-up warnings stay out
    cmd = [bin_dir / "jpasbatch", "train", toy_mocks, "--out", tmp_path, "--name", "quiet",
           "--workers", "1", "--epochs", "2", "--members", "2"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "WARNING" not in res.stderr and "Token authentication" not in res.stderr
    assert "model:" in res.stdout
