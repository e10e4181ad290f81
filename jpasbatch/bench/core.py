"""The bench's vocabulary: timings, outcomes, mismatches and where they were measured.

Every figure the bench reports is a median over repeats of a wall time (or of
a time the stage measured itself, such as one training epoch) for ``n`` items;
:func:`summary_of` turns the repeats into the row that records and reports carry.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class BenchmarkMismatch(AssertionError):
    """A stage's answer differs from its peer's beyond tolerance: a fast wrong stage loses."""


@dataclass
class Outcome:
    """What one call of a stage (or of its peer) gives back.

    Attributes
    ----------
    answer
        Whatever the stage's ``compare`` needs to check it against the peer.
    seconds
        Times the stage measured itself (one per repeat, e.g. per training epoch);
        ``None``: the runner's wall time of the call is the figure.
    info
        Extra figures to keep in the record (rows rejected, sizes on disk...).
    """

    answer: Any = None
    seconds: list[float] | None = None
    info: dict = field(default_factory=dict)


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    """Wall times of ``repeats`` calls of ``fn``, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def summary_of(times: list[float], n: int) -> dict:
    """Median and spread of wall times for ``n`` items (``per_s`` from the median)."""
    t = np.asarray(times, dtype=float)
    med = float(np.median(t))
    return {
        "n": int(n),
        "repeats": len(t),
        "median_s": med,
        "min_s": float(t.min()),
        "max_s": float(t.max()),
        "per_s": n / med if med > 0 else float("inf"),
    }


def torch_device() -> str:
    """Where the torch stages run: the first GPU when torch sees one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name() -> str:
    """``cpu``, or the name of the first CUDA device when torch sees one."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def machine() -> dict:
    """Where the figures were measured: platform, cores, memory, device, library versions."""
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device_name(),
    }
    try:
        with open("/proc/meminfo") as fh:
            info["memory_gb"] = round(int(fh.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def versions() -> dict[str, str]:
    """Versions of jpasbatch and of the libraries the stages' figures depend on."""
    from importlib.metadata import PackageNotFoundError, version

    from jpasbatch.core.version import __version__

    out = {"jpasbatch": __version__}
    for name in (
        "numpy",
        "scipy",
        "torch",
        "pyarrow",
        "dask",
        "distributed",
        "ray",
        "hats",
        "hats-import",
        "zarr",
        "speclite",
        "scikit-learn",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
