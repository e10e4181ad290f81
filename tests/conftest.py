"""Shared test fixtures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

#: Where the environment's commands are (``dask``, ``ray``, ``jpasbatch``).
BIN = Path(sys.executable).parent
#: The project's shared data folder, beside the checkout (present in CI).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ``../shared/data``; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


@pytest.fixture(scope="module")
def client():
    """A real Dask cluster (2 single-threaded worker processes), one per test module."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as c:
            yield c


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray runtime (2 CPUs) shared by every test that trains on Ray Train."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _wait_for(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; ``TimeoutError(what)`` after ``timeout`` s."""
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


@pytest.fixture(scope="session")
def wait_for():
    """``wait_for(predicate, timeout, what)``: poll until true, else ``TimeoutError(what)``."""
    return _wait_for


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Where the environment's commands are (``dask``, ``ray``, ``jpasbatch``)."""
    return BIN


@pytest.fixture(scope="session")
def dask_processes(tmp_path_factory):
    """`dask scheduler` + 2 x `dask worker` processes; yields (address, worker nanny procs)."""
    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    common = {"start_new_session": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sched = subprocess.Popen(
        [
            BIN / "dask",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            ":0",
            "--scheduler-file",
            sched_file,
        ],
        **common,
    )
    _wait_for(sched_file.exists, 60, "the scheduler did not start")
    time.sleep(0.5)
    address = json.loads(sched_file.read_text())["address"]
    workers = [
        subprocess.Popen(
            [
                BIN / "dask",
                "worker",
                address,
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--dashboard-address",
                ":0",
                "--name",
                f"w{k}",
                "--local-directory",
                d / f"w{k}",
            ],
            **common,
        )
        for k in range(2)
    ]
    from distributed import Client

    with Client(address) as c:
        c.wait_for_workers(2, timeout=60)
    yield address, workers
    for p in [*workers, sched]:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """`ray start --head` on loopback, as a user starts it; yields its address and the
    environment a client needs (Ray's token authentication, with this run's token).

    Stopped by killing its process group, not with `ray stop`, which would stop
    every Ray on the machine (the ``ray_session`` of other tests among them).
    """
    import secrets

    port = _free_port()
    env = os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    proc = subprocess.Popen(
        [
            BIN / "ray",
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    _wait_for(listening, 120, "the Ray head did not start")
    time.sleep(3)  # the raylet registers after the GCS port opens
    yield f"127.0.0.1:{port}", env
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    # `ray start` recorded this cluster as the machine's current one; it is gone now
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    if current.exists() and current.read_text().strip().endswith(f":{port}"):
        current.unlink()
