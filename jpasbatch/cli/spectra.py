"""The spectral sub-commands: ``spectra``, ``spectra-prepare``, ``spectra-emulate``,
``spectra-train`` and ``spectra-evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from jpasbatch.cli.read_options import add_read_options, read_options
from jpasbatch.cli.train_options import add_ray_options, ray_flags, spec_flags
from jpasbatch.pipeline.specs import spec_from


def add_spectra(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spectra",
        help="classify spectra and measure their redshifts (GaSNet-II + template fit)",
        description="Read SDSS spec / spec-lite files, DESI coadds or plain tables, mask bad "
        "pixels (and_mask, ivar == 0), resample them onto the common log-lambda grid and run "
        "a trained model (jpasbatch spectra-train; default: the shipped one), then refine the "
        "redshifts by a redrock-template fit around the networks' (on Dask). One row per "
        "spectrum: ID, SOURCE, P_STAR, P_GALAXY, P_QSO, CLASS (the network's), SPECTYPE (the "
        "fit's: lowest chi2 - 2 ln P among the network's top two), Z and Z_ERR (the fit's; "
        "with --no-refine the mean and spread of the predicted class's regressors), Z_NET and "
        "Z_NET_ERR (the network's), DELTACHI2, ZWARN (redrock bits), CHI2_STAR/GALAXY/QSO "
        "(each fitted class's chi2), ROBUST, Z_GALAXY/Z_QSO (+ _ERR), "
        "Z_FNET, and, when the file has a redshift, Z_REF, CLASS_REF and DV_KMS = c (Z - "
        "Z_REF) / (1 + Z_REF). Unreadable files go to OUT_rejects.parquet.",
    )
    p.add_argument("spectra", nargs="+", type=Path, metavar="SPECTRA", help="spectra files")
    p.add_argument(
        "--model", type=Path, help="model folder (spectra-train; default: the shipped models)"
    )
    p.add_argument("--out", required=True, type=Path, help="output table: .parquet, .csv, .fits")
    p.add_argument("--batch-size", type=int, default=256, help="spectra per network pass")
    p.add_argument(
        "--no-refine", action="store_true", help="keep the networks' redshifts (no template fit)"
    )
    p.add_argument("--workers", type=int, default=None, help="local Dask workers (refinement)")
    p.add_argument("--dask-address", help="scheduler address of a running Dask cluster")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true", help="exit with 1 if anything is rejected")
    add_read_options(p)
    p.set_defaults(func=_run_spectra)


def _run_spectra(args: argparse.Namespace) -> int:
    import contextlib

    from jpasbatch.distribute.dask import dask_client
    from jpasbatch.spectra.predict import predict_files, rejects_path

    refine = not args.no_refine
    cluster = (
        dask_client(address=args.dask_address, n_workers=args.workers)
        if refine
        else contextlib.nullcontext()
    )
    with cluster as client:
        path, written, rejected = predict_files(
            args.spectra,
            args.model,
            args.out,
            args.batch_size,
            progress=not args.no_progress,
            options=read_options(args),
            refine=refine,
            client=client,
        )
    print(f"{written} written, {rejected} rejected: see {rejects_path(args.out)}")
    print(f"predictions: {path}")
    return 1 if args.strict and rejected else 0


def add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spectra-prepare",
        help="many spectra files -> masked, resampled arrays (Zarr) + index (Parquet), on Dask",
        description="Read spectra files on a Dask cluster, mask bad pixels, resample flux "
        "and ivar onto the common grid (4618 log-lambda pixels from 3600 A, flux-conserving) "
        "and write OUT/spectra.zarr (one group per partition), OUT/index/*.parquet and "
        "OUT/rejects/*.parquet. Rerun to resume: finished partitions are kept.",
    )
    p.add_argument("spectra", nargs="+", type=Path, metavar="SPECTRA", help="spectra files")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--files-per-partition", type=int, default=200)
    p.add_argument("--min-good", type=int, default=500, help="reject spectra with fewer pixels")
    p.add_argument("--workers", type=int, default=None, help="local Dask workers")
    p.add_argument("--dask-address", help="scheduler address of a running Dask cluster")
    p.add_argument("--strict", action="store_true", help="exit with 1 if anything is rejected")
    add_read_options(p)
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from jpasbatch.distribute.dask import dask_client
    from jpasbatch.spectra.prepare import prepare

    with dask_client(address=args.dask_address, n_workers=args.workers) as client:
        s = prepare(
            args.spectra,
            args.out,
            files_per_partition=args.files_per_partition,
            min_good=args.min_good,
            options=read_options(args),
            client=client,
        )
    print(f"{s['files']} files: {s['rows']} written, {s['rejected']} rejected: see "
          f"{args.out}/rejects/ ({s['partitions']} partitions in {args.out})")  # fmt: skip
    if not s["rows"]:
        return 1
    return 1 if args.strict and s["rejected"] else 0


def add_emulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spectra-emulate",
        help="emulated SDSS/BOSS/DESI-like training spectra from the template libraries",
        description="Draw STAR / GALAXY / QSO targets from the emulator's populations, "
        "build their spectra from redrock / Pickles / kcorrect / QSO templates and observe "
        "them (redshift, IGM, extinction, broadening, flux-calibration error, fibre S/N model "
        "with sky lines, residuals, cosmic rays, masks, survey coverage). Writes the "
        "prepared-spectra layout with CLASS, SUBCLASS, Z, SNR and SPLIT.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--spec", type=Path, help="YAML with EmulateConfig fields; flags override")
    p.add_argument("--n-per-class", type=int, help="spectra per class")
    p.add_argument("--family", choices=["mixed", "observed", "simulated"])
    p.add_argument("--seed", type=int)
    p.add_argument("--partition-size", type=int)
    p.add_argument("--workers", type=int, default=None, help="local Dask workers")
    p.add_argument("--dask-address", help="scheduler address of a running Dask cluster")
    p.set_defaults(func=_run_emulate)


def _run_emulate(args: argparse.Namespace) -> int:
    from jpasbatch.distribute.dask import dask_client
    from jpasbatch.spectra.emulate import EmulateConfig, emulate

    flags = {
        "n_per_class": args.n_per_class,
        "family": args.family,
        "seed": args.seed,
        "partition_size": args.partition_size,
    }
    config = spec_from(EmulateConfig, args.spec, flags)
    with dask_client(address=args.dask_address, n_workers=args.workers) as client:
        s = emulate(config, args.out, client=client)
    print(f"{s['rows']} spectra {s['counts']} splits {s['splits']} in {args.out}")
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spectra-train",
        help="train GaSNet-II (classifier + 10-member redshift ensembles) and FNet on Ray Train",
        description="Train on a labelled prepared-spectra folder (spectra-emulate output): "
        "the classifier, one redshift ensemble per extragalactic class and FNet, each a Ray "
        "Train run with a checkpoint per epoch. Rerun the same command to resume. Writes "
        "OUT/NAME/model.json + model.safetensors, meta.json, history_*.csv and history.png.",
    )
    p.add_argument("data", nargs="?", type=Path, help="prepared-spectra folder with labels")
    p.add_argument("--spec", type=Path, help="YAML job spec (SpectraTrainSpec); flags override")
    p.add_argument("--out", type=Path, help="runs folder (default: runs)")
    p.add_argument("--name", help="model name (default: spectra)")
    p.add_argument("--members", type=int, help="regressors per class (default 10)")
    p.add_argument("--epochs", type=int, help="GaSNet-II epoch limit (default 20)")
    p.add_argument("--fnet-epochs", type=int, help="FNet epoch limit (default 10)")
    p.add_argument("--no-fnet", action="store_true", help="do not train FNet")
    p.add_argument("--batch-size", type=int, help="per-worker batch (default 64)")
    p.add_argument("--max-train", type=int, help="cap on training spectra per part")
    add_ray_options(p, max_failures=False)
    p.add_argument("--threads", type=int, help="torch threads per worker")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from jpasbatch.spectra.train import SpectraTrainSpec, train

    fields = ("data", "out", "name", "members", "epochs", "fnet_epochs", "batch_size",
              "max_train", "threads", "seed")  # fmt: skip
    flags = spec_flags(args, fields) | ray_flags(args) | {"fnet": False if args.no_fnet else None}
    spec = spec_from(SpectraTrainSpec, args.spec, flags)
    print(f"model: {train(spec)}")
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spectra-evaluate",
        help="accuracy, |dv|, Bias / good fraction, Delta z, z-error calibration, HTML report",
        description="Run a trained spectral model on the labelled rows (default: SPLIT=test) "
        "of a prepared-spectra folder and write OUT/report.html with the confusion matrix, "
        "|dv| accuracy at 6000/12000/30000 km/s, GaSNet-II Bias and good fraction, mean "
        "Delta z, the fraction within 1/2/3 sigma_z, and the papers' numbers beside ours; "
        "with refinement (the default) the network alone and the template-fit refinement "
        "side by side (|dv| < 1000/3000/6000/30000 km/s, catastrophic failures, Z_ERR "
        "calibration at 1/2/3 sigma).",
    )
    p.add_argument(
        "data", type=Path, help="labelled prepared-spectra folder (with --real: real sets)"
    )
    p.add_argument("--model", type=Path, help="model folder (default: the shipped spectral models)")
    p.add_argument(
        "--real",
        action="store_true",
        help="DATA is a folder of labelled real sets (../shared/data/real_spectra): read "
        "their files as `jpasbatch spectra` does and score them against their labels",
    )
    p.add_argument("--out", type=Path, default=Path("spectra_evaluation"), help="report folder")
    p.add_argument("--split", default="test", help="SPLIT to evaluate ('all': every row)")
    p.add_argument("--no-refine", action="store_true", help="the networks alone")
    p.add_argument("--workers", type=int, default=None, help="local Dask workers (refinement)")
    p.add_argument("--dask-address", help="scheduler address of a running Dask cluster")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import contextlib

    from jpasbatch.core.defaults import SPECTRA, default_model
    from jpasbatch.distribute.dask import dask_client
    from jpasbatch.spectra.evaluate import predict_store
    from jpasbatch.spectra.predict import SpectraModel, write_table
    from jpasbatch.spectra.report import evaluation_report

    model = SpectraModel.load(args.model or default_model(SPECTRA))
    refine = not args.no_refine
    cluster = (
        dask_client(address=args.dask_address, n_workers=args.workers)
        if refine
        else contextlib.nullcontext()
    )
    split = None if args.split == "all" else args.split
    with cluster as client:
        if args.real:
            from jpasbatch.spectra.real_eval import real_predictions

            table = real_predictions(args.data, model, refine=refine, client=client)
        else:
            table = predict_store(model, args.data, split, refine=refine, client=client)
    write_table(table, args.out / "predictions.parquet")
    res = evaluation_report(table, args.out, model.val_mae)
    print(res["comparison"].to_string(float_format=lambda v: f"{v:.3f}"))
    if refine:
        print(res["stages"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"report: {args.out / 'report.html'}")
    return 0


def add_publish(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spectra-publish",
        help="publish a trained spectral model set as the package's default, with its card",
        description="Copy a spectra-train model folder (model.safetensors + model.json) into "
        "jpasbatch/data/models/spectra (or --dest) with CARD.json (the job that trained it, "
        "the commands, the training data's recipe, validation, and the network-vs-refined "
        "tables of spectra-evaluate reports) and SHA256SUMS.",
    )
    p.add_argument("run", type=Path, help="spectra-train model folder")
    p.add_argument("--job", required=True, type=Path, help="the job spec that trained it")
    p.add_argument(
        "--evaluation",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="a spectra-evaluate report to record (repeat: emulated test split, real spectra; "
        "default: none)",
    )
    p.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="COMMAND",
        help="a command of the recipe to record (repeat; default: none)",
    )
    p.add_argument("--dest", type=Path, help="destination folder (default: the package's)")
    p.set_defaults(func=_run_publish)


def _run_publish(args: argparse.Namespace) -> int:
    from jpasbatch.core.errors import InputError
    from jpasbatch.spectra.publish import build_card, publish_spectra

    evaluations = {}
    for item in args.evaluation:
        name, sep, folder = item.partition("=")
        if not sep:
            raise InputError(f"--evaluation {item!r}: expected NAME=FOLDER")
        evaluations[name] = Path(folder)
    card = build_card(args.run, args.job, evaluations, args.recipe)
    print(f"published: {publish_spectra(args.run, card, args.dest)}")
    return 0
