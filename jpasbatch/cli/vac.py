"""The VAC sub-commands: ``infer`` and ``targets``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from jpasbatch.core.errors import InputError

log = logging.getLogger(__name__)


def add_infer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="run trained models over a catalogue into a value-added catalogue (VAC)",
        description="Dask maps the models over the catalogue's partitions (HEALPix pixels "
        "of an ingested catalogue, or row groups of a Parquet file such as `jpasbatch "
        "photometry` writes), loading them once per worker. Writes OUT/dataset/ (Parquet: "
        "P_STAR, P_GALAXY, P_QSO_LOW, P_QSO_HIGH, CLASS, ENTROPY, Z_PHOT, ..., a HATS "
        "catalogue when the input is one: lsdb.open_catalog(OUT)), OUT/arrays.zarr "
        "(committee members' probabilities, embeddings; aligned by row), OUT/rejects/ "
        "(rows no model can use, with the reason), OUT/provenance.json and "
        "OUT/vac_summary.json, and the QSO target list in OUT/targets/. Every VAC carries "
        "the template fit of the redrock templates (the physics baseline): CLASS_TEMPLATE, "
        "Z_TEMPLATE(_ERR), CHI2_STAR/GALAXY/QSO and p(z) (PZ_TEMPLATE, grid in the Zarr "
        "attribute PZ_TEMPLATE_Z); Z_PHOT is the source --z-from names. "
        "Rows in = VAC rows "
        "+ rejected rows is checked at the end. An interrupted run continues with --resume.",
    )
    p.add_argument(
        "--model",
        help="classifier run folder or file; 'none' for the template fit alone "
        "(default: the committee shipped with jpasbatch, see jpasbatch/data/models)",
    )
    p.add_argument(
        "--templates",
        choices=["full", "coarse", "none"],
        default="full",
        help="the template fit (CLASS_TEMPLATE, Z_TEMPLATE, CHI2_*, p(z) in the Zarr "
        "arrays); 'coarse' grids for quick looks (default: full)",
    )
    p.add_argument(
        "--class-from",
        dest="class_source",
        choices=["auto", "classifier", "template", "combined"],
        default="auto",
        help="where CLASS comes from ('combined': the classifier's probabilities as a "
        "prior on the template fit's); 'auto' (default): the best of the three on real "
        "spectra as the classifier's real_sky.json (jpasbatch real-check --record) "
        "records, the template fit without a record",
    )
    p.add_argument("--catalog", "--catalogue", dest="catalogue", type=Path, required=True,
                   help="ingested catalogue folder, or a Parquet file / folder")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("vac"), help="VAC folder")
    p.add_argument(
        "--foundation",
        help="foundation model (photo-z, class, physical parameters, embeddings); 'none' to "
        "skip it (default: the one shipped with jpasbatch, see jpasbatch/data/models)",
    )
    p.add_argument(
        "--z-from",
        dest="z_source",
        choices=["auto", "template", "foundation", "none"],
        default="auto",
        help="where Z_PHOT comes from (the other stays in Z_TEMPLATE / Z_PHOT_OJALA); "
        "'auto' (default): the foundation model's if its real_sky.json (jpasbatch "
        "real-check --record) shows it beats the template fit on real QSOs and galaxies, "
        "else the template fit's",
    )
    p.add_argument("--resume", action="store_true", help="keep finished partitions in --out")
    p.add_argument(
        "--batch-size", type=int, default=65536, help="rows per forward pass of the classifier"
    )
    p.add_argument("--rows-per-partition", type=int, default=200_000,
                   help="rows per task for plain Parquet input")  # fmt: skip
    p.add_argument(
        "--workers", type=int, help="local Dask workers (default: one per core, at most 8)"
    )
    p.add_argument("--dask-address", help="a running Dask scheduler (tcp://host:8786)")
    p.add_argument("--gpus", type=int, default=0,
                   help="dask-cuda workers on this many GPUs (needs the gpu extra)")  # fmt: skip
    p.add_argument("--bf16", action="store_true", help="bfloat16 matmuls (GPUs, AMX CPUs)")
    p.add_argument(
        "--keep-columns",
        help="comma-separated input columns to copy into the VAC (default: ID, SOURCE_ID, "
        "SPECNAME, SOURCE, RA, DEC where the input has them; '' for none)",
    )
    p.add_argument("--p-qso", type=float, default=0.5, help="target list: P(QSO) threshold")
    p.add_argument("--mag-limit", type=float, default=23.0, help="target list: faintest rSDSS")
    p.set_defaults(func=_run_infer)


def _run_infer(args: argparse.Namespace) -> int:
    from jpasbatch.vac.infer import InferSpec, infer
    from jpasbatch.vac.targets import write_targets

    spec = InferSpec(
        catalogue=args.catalogue,
        model=_shipped_or(args.model, "classifier"),
        foundation=_shipped_or(args.foundation, "foundation"),
        out=args.out,
        resume=args.resume,
        batch_size=args.batch_size,
        rows_per_partition=args.rows_per_partition,
        gpus=args.gpus,
        dtype="bfloat16" if args.bf16 else "float32",
        workers=args.workers,
        dask_address=args.dask_address,
        templates=args.templates,
        class_source=args.class_source,
        z_source=args.z_source,
        keep_columns=None
        if args.keep_columns is None
        else [c.strip() for c in args.keep_columns.split(",") if c.strip()],
    )
    summary = infer(spec)
    targets = write_targets(args.out, threshold=args.p_qso, mag_limit=args.mag_limit)
    print(f"rows in:       {summary['rows_in']:,}")
    print(f"VAC rows:      {summary['rows_vac']:,}")
    print(
        f"rows rejected: {summary['rows_rejected']:,} {json.dumps(summary['rejected_by_reason'])}"
    )
    print(f"partitions:    {summary['partitions']} ({summary['partitions_resumed']} resumed)")
    print(f"VAC:           {summary['vac']}")
    print(f"targets:       {targets['qso_targets']}")
    return 0


def _shipped_or(model: str | None, kind: str) -> Path | None:
    """``--model`` / ``--foundation``: a path, ``none``, or (not given) the shipped default."""
    from jpasbatch.core import defaults

    if model is None:
        return defaults.default_model(kind)
    return None if model.lower() == "none" else Path(model)


def add_targets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "targets",
        help="QSO target list and expected counts from a VAC (FITS and CSV)",
        description="QSO candidates for spectroscopic follow-up: P(QSO_LOW) + P(QSO_HIGH) "
        "above a threshold and rSDSS below a limit, most probable first; and the expected "
        "number of stars, galaxies and QSOs per magnitude bin (sums of probabilities).",
    )
    p.add_argument("vac", type=Path, help="VAC folder (jpasbatch infer --out)")
    p.add_argument("--out", type=Path, help="output folder (default: VAC/targets)")
    p.add_argument("--p-qso", type=float, default=0.5, help="P(QSO) threshold")
    p.add_argument("--mag-limit", type=float, default=23.0, help="faintest rSDSS magnitude")
    p.set_defaults(func=_run_targets)


def _run_targets(args: argparse.Namespace) -> int:
    from jpasbatch.vac.targets import write_targets

    paths = write_targets(args.vac, args.out, threshold=args.p_qso, mag_limit=args.mag_limit)
    for name, path in paths.items():
        print(f"{name:<22} {path}")
    return 0


def add_real_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "real-check",
        help="the chain on real survey spectra, scored against their pipeline labels",
        description="For every set folder under ROOT (spectra/ or DESI coadd-*.fits, with "
        "labels.csv or redrock-*.fits; e.g. ../shared/data/real_spectra): J-PAS photometry "
        "with the depth noise (per-file rejects), the VAC (template fit, and --model / "
        "--foundation when given), and per method: F1 per class, macro F1, QSO "
        "completeness, QSO and galaxy |dz|/(1+z) < 0.15 and sigma_NMAD, all and split at "
        "r = 21. Checks files in = written + rejected, band coverage and every spectrum's "
        "name in the VAC. Writes OUT/report.md, OUT/real_check.json, OUT/objects.csv.",
    )
    p.add_argument("root", type=Path, help="folder of real-spectra sets")
    p.add_argument("--out", type=Path, default=Path("real_check"), help="output folder")
    p.add_argument("--model", type=Path, help="classifier run folder or file")
    p.add_argument("--foundation", type=Path, help="foundation model")
    p.add_argument("--seed", type=int, default=0, help="seed of the depth-noise draw")
    p.add_argument(
        "--record",
        action="store_true",
        help="write each model's figures beside it (real_sky.json), which "
        "`jpasbatch infer --class-from auto` (classifier) and --z-from auto (foundation) read",
    )
    p.add_argument("--workers", type=int, help="local Dask workers")
    p.set_defaults(func=_run_real_check)


def _run_real_check(args: argparse.Namespace) -> int:
    from jpasbatch.distribute.dask import dask_client
    from jpasbatch.vac.realcheck import real_check, record, record_path

    given = {"classifier": args.model, "foundation": args.foundation}
    recorded = {}
    for kind, model in given.items():
        if not args.record or model is None:
            continue
        try:
            record_path(model, kind)  # checked before the run, not after it
            recorded[kind] = model
        except InputError as exc:
            log.warning(f"--record: {kind} not recorded: {exc}")
    if args.record and not recorded:
        raise InputError("--record writes the figures of a model being judged: give a "
                         "training run's --model / --foundation")  # fmt: skip
    with dask_client(n_workers=args.workers) as client:
        figures = real_check(
            args.root, args.out, model=args.model, foundation=args.foundation,
            seed=args.seed, client=client,
        )  # fmt: skip
    print((args.out / "report.md").read_text())
    for kind, model in recorded.items():
        print(f"recorded: {record(figures, model, kind)}")
    return 0
