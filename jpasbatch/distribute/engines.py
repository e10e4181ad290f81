"""The engines of a job: one Dask client for all Dask stages, made when first needed.

Local by default (a ``LocalCluster``), a running scheduler by address, or
Dask workers submitted as Slurm jobs through dask-jobqueue (the ``slurm``
extra). Ray is not started here: training connects to ``resources.ray.address``
or starts a local Ray itself (see :mod:`jpasbatch.distribute.ray`).
"""

from __future__ import annotations

import contextlib

from jpasbatch.core.errors import JpasBatchError


class Engines:
    """A context manager holding the job's Dask client (``.dask``), started lazily."""

    def __init__(self, resources) -> None:
        self.resources = resources
        self._stack = contextlib.ExitStack()
        self._client = None

    def __enter__(self) -> Engines:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @property
    def dask_started(self) -> bool:
        """Whether a stage has made the Dask client (reading ``.dask`` would make one)."""
        return self._client is not None

    @property
    def dask(self):
        """The Dask client, created on first use."""
        if self._client is None:
            self._client = self._stack.enter_context(self._make())
        return self._client

    @contextlib.contextmanager
    def _make(self):
        from jpasbatch.distribute.dask import dask_client

        spec = self.resources.dask
        if spec.slurm is None:
            with dask_client(address=spec.address, n_workers=spec.workers) as c:
                yield c
            return
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError as exc:  # the optional `slurm` extra
            raise JpasBatchError(
                f"resources.dask.slurm needs dask-jobqueue: pip install 'jpasbatch[slurm]' ({exc})"
            ) from None
        from distributed import Client

        s = spec.slurm
        with SLURMCluster(
            cores=s.cores,
            processes=s.cores,  # one single-threaded worker per core, as locally
            memory=s.memory,
            walltime=s.walltime,
            queue=s.queue,
            account=s.account,
            job_extra_directives=s.job_extra_directives,
        ) as cluster:
            cluster.scale(jobs=s.jobs)
            with Client(cluster) as c:
                yield c
