"""A real multi-host run on one machine: network namespaces as hosts, Dask and Ray by address.

What the test starts, and where. Every host is a network namespace of this machine;
the hosts are joined by a Linux bridge in a namespace of its own (the "switch"), so
the root namespace is not touched:

============  ================  ===================================================
namespace     address           runs
============  ================  ===================================================
``<p>-sw``    (none)            the bridge ``br0``
``<p>-h0``    169.254.77.10     Dask scheduler (port 8786), Ray head (port 6379),
                                the drivers: ``jpasbatch infer --dask-address
                                tcp://169.254.77.10:8786`` and a Ray driver
``<p>-h1``    169.254.77.11     a Dask worker, a Ray worker node (1 CPU, resource
                                ``host1``)
``<p>-h2``    169.254.77.12     a Dask worker
============  ================  ===================================================

The Dask job is the VAC of a small catalogue (4 partitions over the 2 workers, both
of which must run some); it must equal the VAC made in this process alone. The Ray
job is a task pinned to the worker node that runs the committee on the catalogue;
its probabilities must equal this process's (a Ray Train fit would not fit in the
minute on 2 loaded cores).

Containment: each host's only route is the link route of 169.254.77.0/24 (no
default route; the bridge has no link to the root namespace), so every packet stays
between these hosts. Traffic is bounded in time (every process has a deadline) and
in rate (a ``tbf`` qdisc of :data:`RATE` on every host's link), and counted: the
links' packet counters after both jobs must stay under :data:`MAX_PACKETS`.

Cleanup: every service runs in a PID namespace of its own (``unshare --pid --fork
--kill-child --mount-proc``), so a SIGKILL to that one process, by its id, ends
everything the service started (Ray's raylet, GCS, workers...). A finalizer does so
and deletes the namespaces, on failure too. ``ray stop`` is never used: it would
stop every Ray on the machine.

Skips, with the reason, where namespaces cannot be made: not root, no ``ip`` /
``unshare`` / ``nsenter`` / ``tc``, or ``ip netns add`` or ``unshare --pid`` refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dask.distributed import Client

import jpasbatch
from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.classify.classifier import Classifier
from jpasbatch.vac.infer import InferSpec, infer
from jpasbatch.vac.targets import read_vac

SUBNET = "169.254.77"  # link-local, never 169.254.169.254, no private range
HOSTS = 3
DASK_PORT, RAY_PORT = 8786, 6379
#: Rate limit of every host's link, and the packet budget of the whole test.
RATE, MAX_PACKETS = "200mbit", 50_000  # a run sends ~2,500
#: Seconds any one process may take.
DEADLINE = 60
#: Run a command as the first process of a PID namespace of its own: killing this
#: wrapper (SIGKILL) ends the namespace and every process in it.
PID_NS = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
#: VAC columns that name the run (its provenance), not the results.
RUN_COLUMNS = ("PROVENANCE_ID",)


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=check)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [t for t in ("ip", "unshare", "nsenter", "tc") if shutil.which(t) is None]
    if missing:
        return f"no {', '.join(missing)} on this machine"
    return None


class Hosts:
    """Namespaces ``<prefix>-h0..`` on a bridge, and the services started in them."""

    def __init__(self, prefix: str, n: int, logs: Path) -> None:
        self.prefix, self.n, self.logs = prefix, n, logs
        self.namespaces: list[str] = []
        self.services: list[subprocess.Popen] = []
        # Ray's own temp folder: short, as its socket paths must be (107 characters)
        self.ray_tmp = tempfile.mkdtemp(prefix="jbr", dir="/tmp")

    def ns(self, i: int) -> str:
        return f"{self.prefix}-h{i}"

    def ip(self, i: int) -> str:
        return f"{SUBNET}.{10 + i}"

    def link(self, i: int) -> str:
        return f"{self.prefix}-v{i}"  # at most 15 characters

    def make(self) -> None:
        sw = f"{self.prefix}-sw"
        _run("ip", "netns", "add", sw)
        self.namespaces.append(sw)
        _run("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", sw, "link", "set", "br0", "up")
        for i in range(self.n):
            ns, link, port = self.ns(i), self.link(i), f"{self.prefix}-p{i}"
            _run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            _run("ip", "link", "add", link, "type", "veth", "peer", "name", port)
            _run("ip", "link", "set", link, "netns", ns)
            _run("ip", "link", "set", port, "netns", sw)
            _run("ip", "-n", sw, "link", "set", port, "master", "br0", "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", link)
            _run("ip", "-n", ns, "link", "set", link, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run(
                "ip",
                "netns",
                "exec",
                ns,
                "tc",
                "qdisc",
                "add",
                "dev",
                link,
                "root",
                "tbf",
                "rate",
                RATE,
                "burst",
                "256kb",
                "latency",
                "100ms",
            )
            routes = _run("ip", "-n", ns, "route", "show").stdout
            assert "default" not in routes, routes  # no way out of the subnet

    def start(self, i: int, name: str, cmd: list[str], env: dict) -> subprocess.Popen:
        """Start ``cmd`` in host ``i``, in a PID namespace of its own, logging to ``name``.log."""
        log = open(self.logs / f"{name}.log", "w")  # closed in close()
        wrap = ["ip", "netns", "exec", self.ns(i), *PID_NS]
        proc = subprocess.Popen(wrap + cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        proc.name, proc.log = name, log
        self.services.append(proc)
        return proc

    def wait_for(self, proc: subprocess.Popen, text: str, deadline: float) -> None:
        """Wait until ``text`` is in the service's log."""
        path = self.logs / f"{proc.name}.log"
        while text not in path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = path.read_text()[-3000:]
                raise AssertionError(f"{proc.name} did not log {text!r}:\n{tail}")
            time.sleep(0.2)

    def packets(self) -> int:
        """Packets sent and received on every host's link so far."""
        total = 0
        for i in range(self.n):
            out = _run("ip", "-n", self.ns(i), "-s", "-j", "link", "show", "dev", self.link(i))
            stats = json.loads(out.stdout)[0]["stats64"]
            total += stats["rx"]["packets"] + stats["tx"]["packets"]
        return total

    def close(self) -> None:
        for proc in self.services:
            if proc.poll() is None:
                proc.kill()  # the unshare process: --kill-child ends its PID namespace
            try:
                proc.wait(timeout=10)
            finally:
                if log := getattr(proc, "log", None):
                    log.close()
        for ns in reversed(self.namespaces):
            _run("ip", "netns", "del", ns, check=False)  # its links go with it
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture
def hosts(tmp_path):
    if reason := _skip_reason():
        pytest.skip(reason)
    h = Hosts(f"jb{os.getpid() % 100_000}", HOSTS, tmp_path)
    try:
        _run(*PID_NS, "true")  # PID namespaces too (the cleanup depends on them)
        h.make()
    except subprocess.CalledProcessError as exc:
        h.close()
        pytest.skip(f"cannot make network namespaces here: {' '.join(exc.cmd)}: {exc.stderr}")
    except (subprocess.TimeoutExpired, OSError) as exc:
        h.close()
        pytest.skip(f"cannot make network namespaces here: {exc}")
    try:
        yield h
    finally:
        h.close()


def _env(ray_tmp: str) -> dict:
    root = str(Path(jpasbatch.__file__).resolve().parents[1])
    return os.environ | {
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        # a token file left in ~/.ray by another run must not switch authentication on
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": ray_tmp,
    }


DASK_DRIVER = """
import json, sys
from dask.distributed import Client, get_task_stream
from jpasbatch.cli import main
address, argv = sys.argv[1], sys.argv[2:]
with Client(address, timeout=30) as c:
    c.wait_for_workers(2, timeout=30)
    with get_task_stream(c) as ts:
        rc = main(argv)  # the CLI, as a user runs it, on the cluster by address
    workers = sorted({t["worker"] for t in ts.data})
print(json.dumps({"rc": rc, "workers": workers}))
"""

RAY_DRIVER = """
import json, sys
import numpy as np, pyarrow.parquet as pq, ray
address, ip, model, catalogue = sys.argv[1:5]
ray.init(address=address, _node_ip_address=ip, logging_level="ERROR")

@ray.remote(num_cpus=1, resources={"host1": 1})
def committee(model, catalogue):
    from jpasbatch.catalog.cuts import photometry_arrays
    from jpasbatch.classify.classifier import Classifier
    flux, _ = photometry_arrays(pq.read_table(catalogue))
    p, ok = Classifier.load(model).predict_proba(flux.astype(float))
    return ray.util.get_node_ip_address(), p.tolist()

node, p = ray.get(committee.remote(model, catalogue), timeout=50)
print(json.dumps({"node": node, "p": p}))
"""


class Driver:
    """A driver script run in host 0 (in ``pid_of``'s PID namespace if given)."""

    def __init__(self, hosts: Hosts, tmp: Path, name: str, code: str, args: list[str],
                 env: dict, pid_of: subprocess.Popen | None = None) -> None:  # fmt: skip
        script = tmp / f"{name}.py"
        script.write_text(textwrap.dedent(code))
        if pid_of is None:
            where = ["ip", "netns", "exec", hosts.ns(0), *PID_NS]
        else:
            # Ray's driver finds its raylet by listing processes: it must see the head's
            child = Path(f"/proc/{pid_of.pid}/task/{pid_of.pid}/children").read_text().split()[0]
            where = ["nsenter", "-t", child, "-p", "-m", "-n"]
        self.name = name
        cmd = [*where, sys.executable, str(script), *args]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        self.proc = subprocess.Popen(cmd, env=env, **pipes)
        hosts.services.append(self.proc)  # killed in the finalizer if still running

    def result(self) -> dict:
        """The JSON the driver printed last (it must end within :data:`DEADLINE`)."""
        out, err = self.proc.communicate(timeout=DEADLINE)
        assert self.proc.returncode == 0, f"{self.name} failed:\n{out[-2000:]}\n{err[-4000:]}"
        return json.loads(out.strip().splitlines()[-1])


def test_vac_and_ray_task_across_namespaced_hosts(hosts, tmp_path, committee, catalogue_file):
    tmp, model, catalogue, env = tmp_path, committee, catalogue_file, _env(hosts.ray_tmp)
    deadline = time.monotonic() + DEADLINE
    ip0, ip1, ip2 = (hosts.ip(i) for i in range(3))
    sched, ray_head = f"tcp://{ip0}:{DASK_PORT}", f"{ip0}:{RAY_PORT}"
    dask, ray = (str(Path(sys.executable).with_name(n)) for n in ("dask", "ray"))
    ray_opts = f"--num-cpus 1 --object-store-memory {80 << 20} --block --disable-usage-stats"
    # everything starts at once; each waits for its peers on its own
    scheduler = hosts.start(
        0, "dask-scheduler", [dask, *f"scheduler --host {ip0} --port {DASK_PORT}".split(),
                              "--no-dashboard"], env)  # fmt: skip
    head = hosts.start(
        0, "ray-head", [ray, *f"start --head --node-ip-address {ip0} --port {RAY_PORT}".split(),
                        *"--include-dashboard false --temp-dir".split(), hosts.ray_tmp,
                        *ray_opts.split()], env)  # fmt: skip
    worker_opts = "--nthreads 1 --no-nanny --no-dashboard --local-directory".split()
    workers = [
        hosts.start(
            i,
            f"dask-worker-{i}",
            [dask, "worker", sched, "--host", hosts.ip(i), *worker_opts, str(tmp / f"dask-{i}")],
            env,
        )
        for i in (1, 2)
    ]
    hosts.wait_for(head, "Ray runtime started", deadline)
    ray_worker = hosts.start(
        1, "ray-worker", [ray, *f"start --address {ray_head} --node-ip-address {ip1}".split(),
                          "--resources", '{"host1": 1}', *ray_opts.split()], env)  # fmt: skip
    hosts.wait_for(scheduler, "Scheduler at", deadline)
    for w in workers:
        hosts.wait_for(w, "Registered to", deadline)

    # Dask: the VAC by address, against the one made in this process alone
    out = tmp / "vac-cluster"
    argv = ["infer", "--catalog", str(catalogue), "--model", str(model), "--out", str(out),
            *"--templates none --foundation none --class-from classifier".split(),
            "--rows-per-partition", "1000",
            "--dask-address", sched]  # fmt: skip
    # the two jobs run at once, while this process makes its own answers
    dask_job = Driver(hosts, tmp, "dask_driver", DASK_DRIVER, [sched, *argv], env)
    hosts.wait_for(ray_worker, "Ray runtime started", time.monotonic() + DEADLINE)
    ray_args = [ray_head, ip0, str(model), str(catalogue)]
    ray_job = Driver(hosts, tmp, "ray_driver", RAY_DRIVER, ray_args, env, pid_of=head)
    ref = tmp / "vac-local"
    spec = InferSpec(catalogue=catalogue, model=model, out=ref, templates="none",
                     class_source="classifier", rows_per_partition=1000)  # fmt: skip
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        infer(spec, client=c, progress=False)
    flux, _ = photometry_arrays(pq.read_table(catalogue))
    want, _ = Classifier.load(model).predict_proba(flux.astype(float))

    got = dask_job.result()
    assert got["rc"] == 0
    # both workers ran partitions of it
    assert sorted(_host(w) for w in got["workers"]) == [ip1, ip2]
    a, b = (read_vac(d).sort_values("OBJECT_ID", ignore_index=True) for d in (out, ref))
    run = list(RUN_COLUMNS)
    pd.testing.assert_frame_equal(a.drop(columns=run), b.drop(columns=run))
    assert len(a) > 3000

    # Ray: a task pinned to the worker node, by address from the head's host
    ray_got = ray_job.result()
    assert ray_got["node"] == ip1
    np.testing.assert_array_equal(np.array(ray_got["p"], dtype=float), want)

    packets = hosts.packets()
    assert 0 < packets < MAX_PACKETS, packets


def _host(address: str) -> str:
    """The host of ``tcp://host:port``."""
    return address.split("://", 1)[1].rsplit(":", 1)[0]
