"""What a benchmarked stage is, and the registry of stages.

A stage is measured against its *peer* -- an independent implementation of the
same work (speclite, brute-force neighbours, plain pyarrow, a naive loop, a
plain ``torch.nn.Transformer``) -- in the same run, at several sizes and worker
counts. A subclass says how to make inputs of a given size (untimed), how to
run the stage and the peer on them (timed), and how to compare their answers;
:func:`jpasbatch.bench.runner.run_stage` does the rest.

Adding a stage is a module in :mod:`jpasbatch.bench.stages` with a subclass
and one line in :data:`STAGES` (``"name": "module:Class"``).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from jpasbatch.bench.core import Outcome
from jpasbatch.core.errors import JpasBatchError

Engine = Literal["threads", "dask", "ray"]


class Sizes(NamedTuple):
    """A stage's default sizes per preset."""

    tiny: tuple[int, ...]
    quick: tuple[int, ...]
    full: tuple[int, ...]


@dataclass
class Context:
    """What a stage's calls get besides their inputs.

    Attributes
    ----------
    workers
        Workers of this call (threads, Dask workers or Ray Train workers).
    engines
        The run's :class:`~jpasbatch.bench.engines.BenchEngines`.
    tmp
        A scratch folder of the stage (removed at the end).
    preset
        ``tiny``, ``quick`` or ``full``: stages may scale inner work (epochs...) with it.
    repeats
        Repeats asked for (stages timing themselves, e.g. epochs, use it).
    cache
        Inputs shared between the sizes of one stage (e.g. a fitted embedder).
    """

    workers: int
    engines: Any
    tmp: Path
    preset: str = "quick"
    repeats: int = 3
    cache: dict = field(default_factory=dict)

    def dask(self):
        """A Dask client pinned to this call's workers."""
        return self.engines.dask(self.workers)


class Stage:
    """Base class of a benchmarked stage (override the attributes and methods below).

    Attributes
    ----------
    name, title, unit, issue, goal
        Short name (``--stages``), one-line title, what an item is (``spectra``),
        the issue that set the goal and the goal in words.
    engine
        What ``workers`` means: ``threads``, ``dask`` or ``ray`` workers.
    sizes
        Sizes per preset (``tiny`` for tests, ``quick``, ``full``).
    peer_cap
        Largest number of items the peer runs on (slow peers: speclite); the
        ratio compares items per second.
    peer_scales
        Whether the peer uses the workers (threads) too; if not it runs on one.
    survey
        How the full survey's 40 million objects map onto this stage's items
        (``per object`` stages are projected at 40 million items).
    pipeline
        Part of producing the VAC from the survey catalogue (summed in the projection).
    memory
        ``partition``: per-worker memory is bounded by the partition size
        whatever the survey size; ``shard``: it grows with items per worker.
    warmup
        Call the stage and the peer once, untimed, before their first measurement
        (imports, kernel selection, worker start-up); off where the stage
        excludes its own warm-up (training: the first epoch).
    ours_label, peer_label, diff_label
        How the report names the stage, the peer and the answers' difference.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    unit: ClassVar[str] = "objects"
    issue: ClassVar[int] = 0
    goal: ClassVar[str] = ""
    engine: ClassVar[Engine] = "threads"
    sizes: ClassVar[Sizes] = Sizes((), (), ())
    peer_cap: ClassVar[int | None] = None
    peer_scales: ClassVar[bool] = True
    survey: ClassVar[str] = "40 million objects"
    pipeline: ClassVar[bool] = False
    memory: ClassVar[Literal["partition", "shard"]] = "partition"
    warmup: ClassVar[bool] = True
    ours_label: ClassVar[str] = "jpasbatch"
    diff_label: ClassVar[str] = "max abs difference"
    peer_label: ClassVar[str] = "peer"

    def prepare(self, n: int, ctx: Context) -> Any:
        """Inputs of ``n`` items (untimed)."""
        raise NotImplementedError

    def run(self, data: Any, ctx: Context) -> Outcome:
        """The stage on ``data`` with ``ctx.workers`` workers (timed)."""
        raise NotImplementedError

    def peer(self, data: Any, n: int, ctx: Context) -> Outcome:
        """The peer on the first ``n`` items of ``data`` (timed)."""
        raise NotImplementedError

    def compare(self, ours: Outcome, peer: Outcome, n: int, workers: int) -> float:
        """Largest difference of ``ours`` (first ``n`` items) from ``peer``.

        Raises
        ------
        BenchmarkMismatch
            When it is beyond the stage's tolerance.
        """
        raise NotImplementedError

    def variants(self) -> dict[str, Any]:
        """Other implementations measured at the headline point.

        ``label -> (fn, check)``: ``fn(data, ctx) -> Outcome`` runs it, ``check(out,
        peer_out, n) -> (diff, extra)`` compares it with the peer (raising
        :class:`BenchmarkMismatch` beyond tolerance) and returns fields for the record.
        """
        return {}

    def goal_check(self, rec: dict) -> tuple[bool | None, str]:
        """Whether the record meets :attr:`goal` (None: not measurable here) and why."""
        return None, "no goal checked"

    def cleanup(self, data: Any) -> None:
        """Free what :meth:`prepare` made (files live in ``ctx.tmp``, removed anyway)."""


#: Registered stages, in report order: name -> "module:Class" (imported when used) or a class.
STAGES: dict[str, str | type[Stage]] = {
    "photometry": "jpasbatch.bench.stages.photometry:PhotometryStage",
    "similarity": "jpasbatch.bench.stages.similarity:SimilarityStage",
    "mocks": "jpasbatch.bench.stages.mocks:MocksStage",
    "ingest": "jpasbatch.bench.stages.ingest:IngestStage",
    "training": "jpasbatch.bench.stages.training:TrainingStage",
    "committee": "jpasbatch.bench.stages.committee:CommitteeStage",
    "transformer": "jpasbatch.bench.stages.transformer:TransformerStage",
    "spectral": "jpasbatch.bench.stages.spectral:SpectralStage",
    "spectral_refine": "jpasbatch.bench.stages.spectral_refine:SpectralRefineStage",
    "vac": "jpasbatch.bench.stages.vac:VacStage",
    "templatefit": "jpasbatch.bench.stages.templatefit:TemplateFitStage",
}


def get_stage(name: str) -> Stage:
    """An instance of the registered stage ``name``."""
    if name not in STAGES:
        raise JpasBatchError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    target = STAGES[name]
    if isinstance(target, str):
        module, cls = target.split(":")
        target = getattr(importlib.import_module(module), cls)
    return target()


def scratch(prefix: str) -> Path:
    """A new scratch folder (the runner removes it with :func:`remove`)."""
    return Path(tempfile.mkdtemp(prefix=f"jpasbatch-bench-{prefix}-"))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- goal helpers
def goal_row(rec: dict, cores: int = 2, impl: str = "ours") -> dict:
    """The row a goal "on ``cores`` cores" is judged on: largest size, ``cores`` workers.

    Where ``cores`` workers were not measured, the most workers measured below it.
    """
    rows = [r for r in rec["rows"] if r["impl"] == impl]
    big = max(r["n"] for r in rows)
    at_big = [r for r in rows if r["n"] == big]
    fit = [r for r in at_big if r["workers"] <= cores] or at_big
    return max(fit, key=lambda r: r["workers"])


def ratio_at(rec: dict, row: dict) -> float:
    """The ratio to the peer of an ``ours`` row."""
    return next(
        x["ratio"] for x in rec["ratios"] if x["n"] == row["n"] and x["workers"] == row["workers"]
    )
