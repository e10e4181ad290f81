"""Real engines started the way users start them, and the faults a long run meets.

A ``dask scheduler`` and two ``dask worker`` processes (each under its nanny) on
loopback, started by the test; inference runs against them by address. A worker
killed mid-run, or the driver killed mid-run and rerun with ``--resume``, must
give the same VAC as an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.classify.model import CommitteeMLP
from jpasbatch.vac.infer import InferSpec, infer

N_PARTS = 40


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """A paper-size committee (8 x 8 x 200) and 120,000 rows in 40 row-group partitions."""
    d = tmp_path_factory.mktemp("workload")
    table = random_catalogue(120_000, seed=21)
    pq.write_table(table, d / "cat.parquet", row_group_size=3000)
    scaler = FeatureScaler.fit(photometry_arrays(table.slice(0, 5000))[0].astype(float))
    model = Classifier(CommitteeMLP(scaler.n_features, seed=2), scaler).save(d / "model.json")
    return d / "cat.parquet", model


def _spec(workload, out: Path, address: str, resume: bool = False) -> InferSpec:
    cat, model = workload
    return InferSpec(
        catalogue=cat,
        model=model,
        out=out,
        dask_address=address,
        rows_per_partition=3000,
        resume=resume,
    )


def _files(out: Path) -> list[Path]:
    return sorted((out / "dataset").glob("part-*.parquet"))


def _same_vac(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert [f.name for f in fa] == [f.name for f in fb] and len(fa) == N_PARTS
    for x, y in zip(fa, fb, strict=True):
        assert pq.read_table(x).equals(pq.read_table(y)), x.name


@pytest.fixture(scope="module")
def reference(dask_processes, workload, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "vac"
    summary = infer(_spec(workload, out, dask_processes[0]), progress=False)
    assert summary["partitions"] == N_PARTS and summary["rows_in"] == 120_000
    return out


@pytest.mark.slow  # `make test-slow`: keeps `make test` within 15 min on 2 cores
def test_a_killed_dask_worker_does_not_change_the_vac(
    dask_processes, workload, reference, tmp_path, wait_for
):
    address, nannies = dask_processes
    out = tmp_path / "vac"
    import threading

    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "summary", infer(_spec(workload, out, address), progress=False)
        )
    )
    thread.start()
    wait_for(lambda: len(_files(out)) >= 2, 120, "no partition finished")
    # the worker process (the nanny's child) dies as in an out-of-memory kill
    victim = psutil.Process(nannies[0].pid).children(recursive=True)
    done_at_kill = len(_files(out))
    for p in victim:
        p.kill()
    thread.join(timeout=300)
    assert done_at_kill < N_PARTS, "the run finished before the kill: make the workload larger"
    assert result["summary"]["rows_vac"] + result["summary"]["rows_rejected"] == 120_000
    _same_vac(out, reference)
    from distributed import Client

    with Client(address) as c:  # the nanny restarted its worker
        c.wait_for_workers(2, timeout=60)


def test_a_killed_driver_resumes_to_the_same_vac(
    dask_processes, workload, reference, tmp_path, wait_for, bin_dir
):
    address, _ = dask_processes
    cat, model = workload
    out = tmp_path / "vac"
    cmd = [
        bin_dir / "jpasbatch",
        "infer",
        "--model",
        model,
        "--foundation",  # as _spec: the classifier alone
        "none",
        "--catalog",
        cat,
        "--out",
        out,
        "--dask-address",
        address,
        "--rows-per-partition",
        "3000",
    ]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: len(_files(out)) >= 2, 120, "no partition finished")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(_files(out))
    assert done < N_PARTS, "the run finished before the kill: make the workload larger"
    assert not (out / "vac_summary.json").exists()
    summary = infer(_spec(workload, out, address, resume=True), progress=False)
    assert summary["partitions_resumed"] >= done
    _same_vac(out, reference)
