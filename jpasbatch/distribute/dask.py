"""Dask for the whole package: how a client is made, and how tasks' results come back.

Library stages take an optional ``client``; :func:`dask_client` decides how one is
made when none is given (a local cluster sized for the machine, a scheduler
address, or dask-cuda's ``LocalCUDACluster`` on GPUs), and :func:`gather`
collects the results of the tasks a stage submitted, with one progress bar. So
the domain packages never import dask: they submit plain functions to the client
they are given. (Slurm's dask-jobqueue is chosen per job, in
:mod:`jpasbatch.distribute.engines`.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence

from tqdm import tqdm

from jpasbatch.core.errors import JpasBatchError
from jpasbatch.core.progress import disable as progress_disable


@contextlib.contextmanager
def dask_client(
    client=None, *, address: str | None = None, n_workers: int | None = None, gpus: int = 0
) -> Iterator:
    """Yield a Dask client: the one given, one connected to ``address``, or a local cluster.

    Parameters
    ----------
    client
        An existing ``dask.distributed.Client``; used as is and left open.
    address
        Scheduler address (``tcp://host:8786``) to connect to.
    n_workers
        Workers of the local cluster (default: one single-threaded worker per
        core, at most 8, which suits the GIL-bound pandas/pyarrow work of the stages).
    gpus
        Without ``client`` or ``address``: a dask-cuda ``LocalCUDACluster`` on this
        many GPUs (the optional ``gpu`` extra) instead of a CPU cluster.
    """
    if client is not None:
        yield client
        return
    from dask.distributed import Client, LocalCluster

    if address:
        with Client(address) as c:
            yield c
        return
    if gpus:
        with _cuda_cluster(gpus) as cluster, Client(cluster) as c:
            yield c
        return
    n = n_workers or max(1, min(os.cpu_count() or 1, 8))
    with (
        LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _cuda_cluster(gpus: int):
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:  # dask-cuda is the optional `gpu` extra
        raise JpasBatchError(
            f"--gpus needs dask-cuda: pip install 'jpasbatch[gpu]' ({exc})"
        ) from None
    return LocalCUDACluster(CUDA_VISIBLE_DEVICES=",".join(str(i) for i in range(gpus)))


def gather(
    futures: list,
    progress: bool,
    what: str,
    *,
    unit: str = "part",
    total: int | None = None,
    size: Callable[[object], int] | None = None,
    check: Callable[[object], None] | None = None,
) -> list:
    """Results of Dask ``futures`` in submission order, with a progress bar as they finish.

    Without a terminal (a batch log), a log line per finished part instead.

    Parameters
    ----------
    futures
        The submitted tasks.
    progress
        Show progress at all.
    what, unit
        The bar's label and unit.
    total, size
        The bar's length and how far a result moves it (default: one per task;
        e.g. rows, with ``size=lambda r: r["rows"]``).
    check
        Called on each result as it arrives; what it raises cancels the tasks
        not yet finished and is raised here.
    """
    from dask.distributed import as_completed

    results = {}
    bar = tqdm(total=len(futures) if total is None else total, desc=what, unit=unit,
               unit_scale=size is not None, disable=progress_disable(progress))  # fmt: skip
    lines = progress and not sys.stderr.isatty()
    try:
        for done, fut in enumerate(as_completed(futures), 1):
            result = fut.result()
            if check is not None:
                try:
                    check(result)
                except Exception:
                    fut.client.cancel(futures)
                    raise
            results[fut.key] = result
            bar.update(1 if size is None else size(result))
            if lines:
                logging.getLogger(__name__).info("%s: %d/%d parts", what, done, len(futures))
    finally:
        bar.close()
    return [results[f.key] for f in futures]


def map_tasks(
    func: Callable,
    calls: Iterable[tuple],
    *,
    what: str,
    progress: bool = True,
    shared: Sequence = (),
    client=None,
    address: str | None = None,
    n_workers: int | None = None,
) -> list:
    """``func(*shared, *call)`` for every ``call``, one Dask task each; results in call order.

    The way a stage maps its kernel over partitions (files, tiles, chunks): the
    client is :func:`dask_client`'s (``client``, ``address``, ``n_workers``), the
    ``shared`` objects are sent to every worker once (not once per task), and the
    results come back through :func:`gather` under the progress label ``what``.
    Tasks are not pure (``pure=False``): a rerun writes its partition again.
    """
    with dask_client(client, address=address, n_workers=n_workers) as c:
        # keys of their own (hash=False): equal objects scattered by two maps (two None
        # placeholders, the same catalogue) would share a key, and the first map's
        # release would take the data from under the second's tasks
        sent = c.scatter(list(shared), broadcast=True, hash=False) if shared else []
        futures = [c.submit(func, *sent, *call, pure=False) for call in calls]
        return gather(futures, progress, what)


def worker_threads() -> int | None:
    """Threads of the Dask worker this runs in (None outside a worker)."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError):
        return None


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def tune_allocator(mmap_threshold: int = 64 << 20) -> bool:
    """Let glibc keep large temporaries in the heap (once per process; Linux only).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which also
    freezes glibc's mmap threshold at 128 KiB: every array above that is then
    mmapped and unmapped on each use, and the template fit's per-chunk
    temporaries are page-faulted anew every time (measured: 1,560 objects/s in
    such a process, 4,430 with this call, 2,680 with glibc's defaults). Returns
    whether the allocator was tuned (False where there is no glibc).
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    return ok and libc.mallopt(_M_TRIM_THRESHOLD, 2 * mmap_threshold) == 1
