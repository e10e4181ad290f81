"""Catalogue ingest (validate, cut, HATS partition on Dask) against plain pyarrow read + write."""

from __future__ import annotations

import itertools

from jpasbatch.bench.core import BenchmarkMismatch, Outcome
from jpasbatch.bench.stage import Context, Sizes, Stage
from jpasbatch.bench.stages.mocks import size_goal

_ids = itertools.count()
ROWS_PER_FILE = 1_000_000


class IngestStage(Stage):
    name = "ingest"
    title = "Ingest: 60-band catalogue (flux + error) to a validated HATS catalogue"
    unit = "rows"
    issue = 3
    goal = "10,000,000 rows under 6 GB peak memory on 2 cores; rows/s and ratio to pyarrow"
    engine = "dask"
    sizes = Sizes(tiny=(4000, 10_000), quick=(100_000, 400_000), full=(250_000, 1_000_000))
    peer_scales = False
    survey = "one row per survey object"
    pipeline = True
    ours_label = "jpasbatch ingest (validate, cut, HATS partition)"
    peer_label = "pyarrow read + write, no checks"
    diff_label = "rows lost"

    def prepare(self, n: int, ctx: Context):
        from jpasbatch.catalog.random import random_catalogue
        from jpasbatch.catalog.readers import write_archive_like

        n_files = max(2, -(-n // ROWS_PER_FILE))
        folder = ctx.tmp / f"input-{n}"
        folder.mkdir()
        files = []
        for i in range(n_files):
            rows = n // n_files + (i < n % n_files)
            table = random_catalogue(
                rows, seed=i, tile_id=2241 + i, first_number=0, bad_fraction=0.01
            )
            path = folder / f"tile{i:02d}.parquet"
            files.append(write_archive_like(path, table, layout="array", fmt="parquet"))
            del table
        return {"files": files, "folder": folder}

    def run(self, data, ctx: Context) -> Outcome:
        return self._ingest(data, ctx, "direct")

    def _ingest(self, data, ctx: Context, partitioner: str) -> Outcome:
        from jpasbatch.catalog.ingest import ingest

        out = ctx.tmp / f"catalog-{next(_ids)}"
        data.setdefault("outs", []).append(out)
        chunk = 200_000 if ctx.preset == "full" else 50_000
        s = ingest(data["files"], out, client=ctx.dask(), progress=False, chunk_rows=chunk,
                   partitioner=partitioner)  # fmt: skip
        info = {
            "partitions": s.partitions,
            "rows_rejected": s.rows_rejected,
            "validate_s": s.seconds["validate"],
            "partition_s": s.seconds["partition"],
        }
        return Outcome({"in": s.rows_in, "out": out}, info=info)

    def peer(self, data, n: int, ctx: Context) -> Outcome:
        import pyarrow.parquet as pq

        rows = 0
        for path in data["files"]:
            src = pq.ParquetFile(path)
            with pq.ParquetWriter(data["folder"] / "copy.parquet", src.schema_arrow) as writer:
                for batch in src.iter_batches(batch_size=200_000):
                    writer.write_batch(batch)
                    rows += batch.num_rows
        return Outcome(rows)

    def compare(self, ours: Outcome, peer: Outcome, n: int, workers: int) -> float:
        import pyarrow.dataset as ds

        from jpasbatch.bench.stage import remove

        # counted from the files, not from the summary: an independent conservation check
        out = ours.answer["out"]
        a = {
            "in": ours.answer["in"],
            "kept": ds.dataset(out / "dataset", format="parquet").count_rows(),
            "rejected": ds.dataset(out / "rejects", format="parquet").count_rows(),
        }
        remove(out)
        lost = peer.answer - (a["kept"] + a["rejected"])
        if a["in"] != peer.answer or lost != 0:
            raise BenchmarkMismatch(
                f"ingest read {a['in']} rows and wrote {a['kept']} kept + {a['rejected']} "
                f"rejected; pyarrow read {peer.answer}"
            )
        return float(lost)

    def variants(self) -> dict:
        def hats_import(data, ctx: Context) -> Outcome:
            return self._ingest(data, ctx, "hats-import")

        def check(out: Outcome, peer: Outcome, n: int):
            partition_s = out.info["partition_s"]
            return self.compare(out, peer, n, 0), {"hats_import_partition_s": partition_s}

        # the same catalogue (tests/catalog/test_partition.py), through hats-import's
        # map / split / reduce (the path before issue 22, at the new zstd level), in the same run
        return {"jpasbatch ingest --partitioner hats-import": (hats_import, check)}

    def goal_check(self, rec: dict) -> tuple[bool | None, str]:
        return size_goal(rec, 10_000_000, None, 6.0)

    def cleanup(self, data) -> None:
        from jpasbatch.bench.stage import remove

        for out in data.get("outs", []):
            remove(out)
        remove(data["folder"])
