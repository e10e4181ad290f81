"""The engines a bench run measures on: this process's threads, Dask, Ray.

* ``threads``: kernels run in the bench process with ``w`` torch / BLAS threads.
* ``dask``: one cluster for the whole run -- a ``LocalCluster`` of single-threaded
  workers (as many as the largest worker count asked for), or a running
  scheduler (``dask_address``). A measurement on ``w`` workers goes through
  :class:`WorkerSubset`, which pins every task to the first ``w`` workers, so
  strong and weak scaling are measured the same way on a laptop and on a cluster.
* ``ray``: a local Ray runtime with as many CPUs as the largest worker count,
  or a running cluster (``ray_address``); Ray Train starts ``w`` workers.

Nothing is started until a stage needs it; everything started is stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from jpasbatch.core.errors import JpasBatchError
from jpasbatch.distribute.dask import dask_client


class WorkerSubset:
    """A Dask client whose submissions go only to ``workers`` (addresses).

    Library stages take a ``client`` and call ``submit`` / ``map`` / ``scatter``
    / ``compute`` on it; this proxy adds ``workers=`` (and forbids other
    workers) to those calls and forwards everything else to the real client.
    """

    def __init__(self, client, workers: list[str]) -> None:
        self._client = client
        self.workers = list(workers)

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def _pin(self, kwargs: dict, allow: bool = True) -> dict:
        kwargs.setdefault("workers", self.workers)
        if allow:
            kwargs.setdefault("allow_other_workers", False)
        return kwargs

    def submit(self, *args, **kwargs):
        return self._client.submit(*args, **self._pin(kwargs))

    def map(self, *args, **kwargs):
        return self._client.map(*args, **self._pin(kwargs))

    def compute(self, *args, **kwargs):
        return self._client.compute(*args, **self._pin(kwargs))

    def scatter(self, *args, **kwargs):
        return self._client.scatter(*args, **self._pin(kwargs, allow=False))


class BenchEngines:
    """Context manager owning the run's Dask client and Ray runtime (both lazy).

    Parameters
    ----------
    max_workers
        The largest worker count of the run (size of the local cluster / Ray).
    dask_address, ray_address
        Running clusters to use instead of local ones.
    """

    def __init__(
        self, max_workers: int, dask_address: str | None = None, ray_address: str | None = None
    ) -> None:
        self.max_workers = max_workers
        self.dask_address, self.ray_address = dask_address, ray_address
        self._stack = contextlib.ExitStack()
        self._client = None
        self._worker_pids: dict[str, int] = {}
        self._ray_started = False

    def __enter__(self) -> BenchEngines:
        return self

    def __exit__(self, *exc) -> None:
        if self._ray_started:
            import ray

            ray.shutdown()
        self._stack.close()

    # ------------------------------------------------------------------ Dask
    @property
    def client(self):
        """The run's Dask client (started on first use)."""
        if self._client is None:
            self._client = self._stack.enter_context(
                dask_client(address=self.dask_address, n_workers=self.max_workers)
            )
            if not self.dask_address:
                self._client.wait_for_workers(self.max_workers, timeout=120)
            workers = self.dask_workers()
            if len(workers) < self.max_workers:
                raise JpasBatchError(
                    f"the Dask cluster has {len(workers)} workers, fewer than the "
                    f"{self.max_workers} asked for with --workers"
                )
            if not self.dask_address:
                self._worker_pids = self._client.run(os.getpid)
        return self._client

    def restart_local(self) -> None:
        """Fresh worker processes of a local cluster (a remote cluster is left as it is).

        Each Dask stage starts from clean workers, so its per-worker peak memory
        is its own, not what the stage before left behind.
        """
        if self._client is not None and not self.dask_address:
            self._client.restart()
            self._worker_pids = self._client.run(os.getpid)

    def dask_workers(self) -> list[str]:
        """Worker addresses of the cluster, in a stable order."""
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def dask(self, workers: int) -> WorkerSubset:
        """A client pinned to the first ``workers`` workers."""
        return WorkerSubset(self.client, self.dask_workers()[:workers])

    def dask_memory_keys(self, workers: int) -> list:
        """What :class:`~jpasbatch.bench.memory.PeakMemory` knows the subset's workers by."""
        addrs = self.dask_workers()[:workers]
        return [self._worker_pids[a] for a in addrs] if self._worker_pids else addrs

    def dask_remote_memory(self):
        """Sampler of a remote cluster's per-worker memory (None for a local cluster)."""
        if not self.dask_address:
            return None
        client = self.client

        def sample() -> dict[str, int]:
            info = client.scheduler_info(n_workers=-1)["workers"]
            return {a: w.get("metrics", {}).get("memory", 0) for a, w in info.items()}

        return sample

    # ------------------------------------------------------------------ Ray
    def ray(self) -> str | None:
        """Make sure Ray runs (local: as many CPUs as workers); returns the address given."""
        import ray

        if not ray.is_initialized():
            if self.ray_address:
                ray.init(address=self.ray_address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.max_workers, include_dashboard=False, log_to_driver=False)
            self._ray_started = True
        return self.ray_address

    # ------------------------------------------------------------------ threads
    @staticmethod
    @contextlib.contextmanager
    def threads(workers: int) -> Iterator[None]:
        """Run the body with ``workers`` torch and BLAS threads in this process."""
        import torch
        from threadpoolctl import threadpool_limits

        before = torch.get_num_threads()
        torch.set_num_threads(workers)
        try:
            with threadpool_limits(limits=workers):
                yield
        finally:
            torch.set_num_threads(before)

    def describe(self, used: set[str]) -> dict[str, str]:
        """The engines the run used, in words (for the record)."""
        out = {}
        if "threads" in used:
            out["threads"] = "the bench process, w torch + BLAS threads"
        if "dask" in used:
            out["dask"] = (
                f"scheduler {self.dask_address}"
                if self.dask_address
                else f"local Dask cluster, {self.max_workers} workers x 1 thread"
            )
        if "ray" in used:
            out["ray"] = (
                f"Ray cluster {self.ray_address}"
                if self.ray_address
                else f"local Ray, {self.max_workers} CPUs"
            )
        return out
