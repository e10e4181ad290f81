"""CPU (user, system), page faults and peak RSS of the VAC kernel on one partition's rows.

Usage (from the folder the job ran in)::

    python docs/rehearsal/vac_cpu.py runA/catalogue --rows 40000 --mmap-mb 64
    python docs/rehearsal/vac_cpu.py runA/catalogue --rows 40000 --mmap-mb 512
    python docs/rehearsal/vac_cpu.py runA/catalogue --rows 40000 --fit-batch 4096

One single-threaded process runs ``process_partition`` with the shipped classifier and
the full template fit, as one Dask worker of the rehearsal does, after
``tune_allocator(mmap_mb)`` (what the VAC's workers call, with 64 MB). CPU time rather
than wall time, so that other work on the machine matters less.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

import jpasbatch.vac.models as vac_models
from jpasbatch.core import defaults
from jpasbatch.distribute.dask import tune_allocator
from jpasbatch.vac.infer import InferSpec, class_source, z_source
from jpasbatch.vac.kernel import process_partition


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("catalogue", type=Path, help="an ingested HATS catalogue")
    p.add_argument("--rows", type=int, default=40_000, help="rows of the partition")
    p.add_argument("--partition", default="*", help="file name pattern (default: the first)")
    p.add_argument("--mmap-mb", type=int, default=64, help="glibc's mmap threshold (MB)")
    p.add_argument("--fit-batch", type=int, default=vac_models.TEMPLATE_BATCH,
                   help="rows per template-fit batch (TEMPLATE_BATCH)")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as a single-threaded Dask worker
    tune_allocator(args.mmap_mb << 20)
    vac_models.TEMPLATE_BATCH = args.fit_batch
    part = sorted((args.catalogue / "dataset").rglob(f"{args.partition}.parquet"))[0]
    table = pq.read_table(part).slice(0, args.rows)
    spec = InferSpec(catalogue=args.catalogue, model=defaults.default_model(), out=Path("-"))
    models = vac_models.load_models(
        spec.model, templates="full", class_source=class_source(spec), z_source=z_source(spec)
    )
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    process_partition(table, models, source=str(part), batch_size=spec.batch_size)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    user, sys_ = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    per_row = 1e3 * (user + sys_) / table.num_rows
    print(
        f"rows {table.num_rows} mmap_mb {args.mmap_mb} fit_batch {args.fit_batch} "
        f"user_s {user:.1f} sys_s {sys_:.1f} cpu_ms_per_row {per_row:.3f} "
        f"wall_s {t1 - t0:.1f} minor_faults {r1.ru_minflt - r0.ru_minflt} "
        f"peak_rss_gb {r1.ru_maxrss / 1e6:.2f}"
    )


if __name__ == "__main__":
    main()
