"""The one thin distribution layer: how jpasbatch gets a Dask client.

Library stages take an optional ``client``; this module decides how one is made
when none is given (a local cluster sized for the machine, or a scheduler
address), so kernels never import dask. (Cluster managers beyond that live
where they are chosen: dask-jobqueue in :mod:`jpasbatch.distribute.engines`, dask-cuda in
:mod:`jpasbatch.vac.infer`.)
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator


@contextlib.contextmanager
def dask_client(
    client=None, *, address: str | None = None, n_workers: int | None = None
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
    """
    if client is not None:
        yield client
        return
    from dask.distributed import Client, LocalCluster

    if address:
        with Client(address) as c:
            yield c
        return
    n = n_workers or max(1, min(os.cpu_count() or 1, 8))
    with (
        LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


def gather(futures: list, progress: bool, what: str) -> list:
    """Results of Dask ``futures`` in submission order, with a progress bar as they finish.

    Without a terminal (a batch log), a log line per finished part instead.
    """
    import logging
    import sys

    from dask.distributed import as_completed
    from tqdm import tqdm

    from jpasbatch.core.progress import disable as progress_disable

    results = {}
    disable = progress_disable(progress)
    bar = tqdm(total=len(futures), desc=what, unit="part", disable=disable)
    lines = progress and not sys.stderr.isatty()
    for done, fut in enumerate(as_completed(futures), 1):
        results[fut.key] = fut.result()
        bar.update()
        if lines:
            logging.getLogger(__name__).info("%s: %d/%d parts", what, done, len(futures))
    bar.close()
    return [results[f.key] for f in futures]


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
