"""VAC production (``jpasbatch infer`` on Dask: Parquet + Zarr + rejects) vs the bare kernel."""

from __future__ import annotations

import itertools

import numpy as np

from jpasbatch.bench.core import BenchmarkMismatch, Outcome
from jpasbatch.bench.stage import Context, Sizes, Stage, goal_row, ratio_at

_ids = itertools.count()
TOLERANCE = 1e-5


def rows_per_partition(n: int) -> int:
    """100,000 rows per task as a survey run would use, smaller for small runs (>= 4 tasks)."""
    return int(min(100_000, max(1000, n // 4)))


class VacStage(Stage):
    name = "vac"
    title = "VAC production: 8-member committee over Dask, Parquet + Zarr + rejects + provenance"
    unit = "objects"
    issue = 6
    goal = "orchestration and I/O add at most 50% to the bare inference kernel (1e6 objects)"
    engine = "dask"
    sizes = Sizes(tiny=(4000, 10_000), quick=(50_000, 200_000), full=(200_000, 1_000_000))
    peer_scales = True  # the kernel runs with as many torch threads as there are workers
    survey = "one VAC row per survey object"
    pipeline = True
    ours_label = "jpasbatch infer end to end (Dask workers x 1 thread)"
    peer_label = "bare kernel on the same partitions in memory, same threads"
    diff_label = "max |dP_QSO_HIGH|"

    def _model(self, ctx: Context):
        if "model" not in ctx.cache:
            from jpasbatch.bench.data import committee_classifier
            from jpasbatch.catalog.cuts import photometry_arrays
            from jpasbatch.catalog.random import random_catalogue
            from jpasbatch.vac.models import load_models

            sample = photometry_arrays(random_catalogue(20_000, seed=99))[0].astype(float)
            path = committee_classifier(sample, seed=1).save(ctx.tmp / "model.json")
            ctx.cache["model"] = (path, load_models(path))
        return ctx.cache["model"]

    def prepare(self, n: int, ctx: Context):
        import pyarrow.parquet as pq

        from jpasbatch.catalog.random import random_catalogue

        path, models = self._model(ctx)
        part = rows_per_partition(n)
        table = random_catalogue(n, seed=5)
        cat = ctx.tmp / f"cat-{n}.parquet"
        pq.write_table(table, cat, row_group_size=part)
        chunks = [table.slice(s, part) for s in range(0, n, part)]
        return {"catalogue": cat, "model": path, "models": models, "chunks": chunks, "part": part}

    def run(self, data, ctx: Context) -> Outcome:
        from jpasbatch.vac.infer import InferSpec, infer

        out = ctx.tmp / f"vac-{next(_ids)}"
        data.setdefault("outs", []).append(out)
        spec = InferSpec(
            catalogue=data["catalogue"],
            model=data["model"],
            out=out,
            rows_per_partition=data["part"],
        )
        summary = infer(spec, client=ctx.dask(), progress=False)
        return Outcome({"summary": summary, "out": out})

    def peer(self, data, n: int, ctx: Context) -> Outcome:
        from jpasbatch.vac.kernel import process_partition

        return Outcome(
            [process_partition(c, data["models"], source="x").vac for c in data["chunks"]]
        )

    def compare(self, ours: Outcome, peer: Outcome, n: int, workers: int) -> float:
        import pyarrow.parquet as pq

        from jpasbatch.bench.stage import remove

        s, out = ours.answer["summary"], ours.answer["out"]
        if s["rows_vac"] + s["rows_rejected"] != n:
            raise BenchmarkMismatch(f"VAC lost rows: {s}")
        got = [pq.read_table(f) for f in sorted((out / "dataset").glob("*.parquet"))]
        remove(out)
        if len(got) != len(peer.answer):
            raise BenchmarkMismatch(f"VAC: {len(got)} partitions, the kernel {len(peer.answer)}")
        diff = max(
            float(np.nanmax(np.abs(a["P_QSO_HIGH"].to_numpy() - b["P_QSO_HIGH"].to_numpy())))
            for a, b in zip(got, peer.answer, strict=True)
        )
        if not diff <= TOLERANCE:
            raise BenchmarkMismatch(f"the VAC's probabilities differ from the kernel's by {diff}")
        return diff

    def goal_check(self, rec: dict) -> tuple[bool | None, str]:
        row = goal_row(rec)
        overhead = 1 / ratio_at(rec, row) - 1
        return overhead <= 0.5, (
            f"orchestration + I/O add {overhead:.0%} to the kernel with {row['workers']} "
            f"workers at {row['n']:,} objects"
        )

    def cleanup(self, data) -> None:
        from jpasbatch.bench.stage import remove

        for out in data.get("outs", []):
            remove(out)
