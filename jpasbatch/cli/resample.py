"""``jpasbatch resample``: a survey-sized archive catalogue from an emulated field."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def add_resample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resample",
        help="a survey-sized archive catalogue resampled from an emulated field (rehearsals)",
        description="Write ROWS rows in the CEFCA archive layout (Parquet and FITS files, "
        "at most 999,999 rows each) for full-survey rehearsals: each row copies a row of "
        "POOL that passes the default cuts (e.g. `jpasbatch simulate`'s "
        "OUT/catalogue/*.parquet), with a new position in the footprint, fresh noise "
        "(k x its own error; the reported error grows by sqrt(1 + k^2)) and a new id. A "
        "fraction of the rows gets one defect each, of every kind the cuts know "
        "(BAD_COORD, BAD_FLUX, NEGATIVE_ERROR, FLAGS, MASK_FLAGS, FEW_BANDS, "
        "DUPLICATE_ID) in equal shares; OUT/resample_summary.json counts them, so an "
        "ingest's rejects can be checked against it. One Dask task per file.",
    )
    p.add_argument(
        "pool", nargs="+", type=Path, metavar="POOL", help="catalogue files to draw from"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--rows", type=int, required=True, help="rows in all")
    p.add_argument("--rows-per-file", type=int, default=500_000, help="rows per file")
    p.add_argument("--formats", default="parquet,fits",
                   help="file formats, cycled over the files (default parquet,fits)")  # fmt: skip
    p.add_argument("--footprint", type=_floats, default=(120.0, 240.0, 0.0, 60.0),
                   metavar="RA0,RA1,DEC0,DEC1", help="sky box in degrees")  # fmt: skip
    p.add_argument("--bad-fraction", type=float, default=0.03, help="rows given a defect")
    p.add_argument("--noise-scale", type=float, default=0.5,
                   help="fresh noise in units of each value's error (k)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--workers", type=int, help="local Dask workers (default: cores)")
    p.set_defaults(func=_run_resample)


def _run_resample(args: argparse.Namespace) -> int:
    from jpasbatch.catalog.resample import resample_catalogue
    from jpasbatch.core.errors import JpasBatchError

    if len(args.footprint) != 4:
        raise JpasBatchError(f"--footprint needs RA0,RA1,DEC0,DEC1, got {args.footprint}")
    s = resample_catalogue(
        args.pool,
        args.out,
        args.rows,
        rows_per_file=args.rows_per_file,
        formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
        footprint=args.footprint,
        bad_fraction=args.bad_fraction,
        noise_scale=args.noise_scale,
        seed=args.seed,
        n_workers=args.workers,
    )
    print(f"rows:  {s.rows:,} in {len(s.files)} files under {args.out}")
    print(f"pool:  {s.pool_rows:,} clean rows")
    print(f"defects (the ingest's rejects): {json.dumps(s.expected_rejects)}")
    return 0
