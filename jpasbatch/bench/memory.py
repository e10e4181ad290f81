"""Peak resident memory per process while a stage runs, sampled in a thread.

The bench reports peak memory *per worker*: the largest resident set each
worker process reached during a call. Worker processes are found as
descendants of this process (a local Dask cluster's workers, a local Ray's
Train workers) and told apart by pid; for a remote Dask cluster, the
scheduler's per-worker memory metric (updated at each heartbeat) is sampled
instead (``remote``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil


class PeakMemory:
    """Context manager: peak RSS of this process, of each descendant, and of ``remote`` keys.

    Parameters
    ----------
    interval
        Seconds between samples. Short calls are sampled at least once, at the end.
    remote
        Optional callable returning ``{key: bytes}`` (e.g. the memory of a remote
        cluster's workers) sampled with the local processes.
    """

    def __init__(
        self, interval: float = 0.1, remote: Callable[[], dict[str, int]] | None = None
    ) -> None:
        self._proc, self._interval, self._remote = psutil.Process(), interval, remote
        self.peaks: dict[int | str, int] = {}
        self.names: dict[int | str, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="peak-memory")

    @property
    def peak(self) -> int:
        """Peak of the sum over all processes seen (bytes): the whole job's footprint."""
        return self._total_peak

    def _sample(self) -> None:
        total = 0
        procs = [self._proc]
        try:
            procs += self._proc.children(recursive=True)
        except psutil.Error:
            pass
        for p in procs:
            try:
                rss = p.memory_info().rss
                # a Ray worker renames itself once it holds an actor: keep every name seen
                self.names.setdefault(p.pid, set()).add(" ".join(p.cmdline())[:300] or p.name())
            except psutil.Error:
                continue
            total += rss
            self.peaks[p.pid] = max(self.peaks.get(p.pid, 0), rss)
        if self._remote is not None:
            try:
                for key, rss in self._remote().items():
                    self.peaks[key] = max(self.peaks.get(key, 0), int(rss))
            except Exception:  # a missed remote sample must not kill the bench
                pass
        self._total_peak = max(self._total_peak, total)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._total_peak = 0
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def of(self, keys) -> list[int]:
        """Peaks (bytes) of the given pids / remote keys that were seen."""
        return [self.peaks[k] for k in keys if k in self.peaks]

    def matching(self, text: str) -> list[int]:
        """Peaks of the local processes whose command line contains ``text``."""
        return [v for k, v in self.peaks.items() if any(text in s for s in self.names.get(k, ()))]
