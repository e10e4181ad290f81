"""Engines and memory: worker subsets on a real Dask cluster, threads, peak RSS per process."""

import os
import subprocess
import sys

import pytest

from jpasbatch.bench.engines import BenchEngines, WorkerSubset
from jpasbatch.bench.memory import PeakMemory

# a lambda travels by value: the workers need not import this module (and torch)
_where = lambda x: __import__("distributed").get_worker().address  # noqa: E731


def test_worker_subset_pins_every_submission(client):
    workers = sorted(client.scheduler_info()["workers"])
    one = WorkerSubset(client, workers[:1])
    futures = [one.submit(_where, k, pure=False) for k in range(8)]
    futures += one.map(_where, range(8, 16), pure=False)
    assert set(client.gather(futures)) == {workers[0]}
    [shared] = one.scatter([list(range(10))], broadcast=True)
    assert set(client.who_has([shared])[shared.key]) == {workers[0]}
    assert one.scheduler == client.scheduler  # everything else is the client's own
    both = WorkerSubset(client, workers)
    assert set(client.gather(both.map(_where, range(40), pure=False))) <= set(workers)


def test_bench_engines_on_a_scheduler_address(client):
    address = client.scheduler.address
    with BenchEngines(2, dask_address=address) as engines:
        assert engines.dask_workers() == sorted(client.scheduler_info()["workers"])
        sub = engines.dask(1)
        assert sub.submit(_where, 0, pure=False).result() == engines.dask_workers()[0]
        # a remote cluster's memory comes from the scheduler, per worker address
        mem = engines.dask_remote_memory()()
        assert set(mem) == set(engines.dask_workers()) and all(v > 0 for v in mem.values())
        assert engines.describe({"dask"}) == {"dask": f"scheduler {address}"}
    with BenchEngines(8, dask_address=address) as engines, pytest.raises(Exception, match="fewer"):
        engines.client  # noqa: B018 - asks for 8 workers of a 2-worker cluster


def test_threads_context_sets_and_restores_torch_threads():
    import torch

    before = torch.get_num_threads()
    with BenchEngines.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_peak_memory_sees_each_child_process():
    code = "import time; x = bytearray(300_000_000); time.sleep(1.0)"
    with PeakMemory(interval=0.05) as mem:
        proc = subprocess.Popen([sys.executable, "-c", code, "memory-hog"])
        proc.wait()
    [peak] = mem.of([proc.pid])
    assert peak > 0.29e9  # the child's own peak, not the sum
    assert mem.matching("memory-hog") == [peak]
    assert mem.peak >= peak + mem.of([os.getpid()])[0] * 0.5
