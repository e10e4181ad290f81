"""The classification sub-commands: ``train``, ``evaluate`` and ``study``."""

from __future__ import annotations

import argparse
from pathlib import Path

from jpasbatch.cli.train_options import add_ray_options, ray_flags, spec_flags
from jpasbatch.pipeline.specs import spec_from


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a star/galaxy/QSO classifier (ANN committee on Ray Train, or random forest)",
        description="Train on labelled photometry in the MOCK schema (mock catalogues, "
        "labelled observed subsets): rows with SPLIT=train train, SPLIT=validation rows "
        "stop early (weighted F1) and calibrate (temperature scaling). The ANN committee "
        "runs on Ray Train with a checkpoint per epoch: rerun the same command (same --out "
        "and --name) after an interruption and it resumes from the last checkpoint. "
        "Writes OUT/NAME/model.json + model.safetensors (or forest.json + forest.skops), "
        "history.csv and history.png.",
    )
    p.add_argument("inputs", nargs="*", type=Path, help="MOCK-schema Parquet files or folders")
    p.add_argument("--spec", type=Path, help="a YAML job spec (TrainSpec fields); flags override")
    p.add_argument("--out", type=Path, help="runs folder (default: runs)")
    p.add_argument("--name", help="run name (default: classifier)")
    p.add_argument("--model", choices=["ann", "forest"])
    p.add_argument("--features", choices=["ann1", "ann2"], help="ann1: f_j/f_r; ann2: colours + r")
    p.add_argument("--members", type=int, help="committee size (default 8)")
    p.add_argument("--epochs", type=int, help="epoch limit (default 30)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 5)")
    p.add_argument("--batch-size", type=int, help="per-worker batch (default 512)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--weighting", choices=["column", "balanced", "none"])
    p.add_argument("--validation", nargs="+", type=Path, help="validation inputs")
    p.add_argument("--init-from", type=Path, help="fine-tune this model.json")
    add_ray_options(p)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from jpasbatch.classify.train import TrainSpec, train

    fields = ("out", "name", "model", "features", "members", "epochs", "patience", "batch_size",
              "lr", "weighting", "validation", "init_from", "seed")  # fmt: skip
    flags = {"train": args.inputs or None} | spec_flags(args, fields) | ray_flags(args)
    spec = spec_from(TrainSpec, args.spec, flags)
    path = train(spec)
    print(f"model: {path}")
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="metrics, plots and an HTML report of classifiers on labelled data",
        description="Confusion matrices, per-class / weighted / macro F1, balanced purity "
        "and completeness, ECE, entropy, ROC / AUC, per r-magnitude bin (17-20, 20-22.5, "
        "22.5-23.6 and sliding 1-mag bins), QSO number estimates; reliability diagrams, "
        "F1 vs magnitude (with the miniJPAS paper's numbers) and entropy vs S/N.",
    )
    p.add_argument("models", nargs="+", help="NAME=PATH (model.json, forest.json or run folder)")
    p.add_argument("--test", nargs="+", type=Path, required=True, help="labelled MOCK-schema data")
    p.add_argument("--split", action="append", help="SPLIT values to use (default: test; 'all')")
    p.add_argument(
        "--protocol",
        choices=["natural", "balanced"],
        default="natural",
        help="natural: sky abundances (QSOs oversampled in the mocks are weighted back) "
        "and prior-corrected probabilities; balanced: STAR, GALAXY and QSO a third each "
        "and training priors, as miniJPAS QSO III's test sets",
    )
    p.add_argument("--out", type=Path, default=Path("evaluation"), help="report folder")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from jpasbatch.classify.evaluate import evaluate_models
    from jpasbatch.core.errors import InputError

    models = {}
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem if Path(item).is_file() else Path(item).name, item
        if not Path(path).exists():
            raise InputError("no such model", path=path)
        models[name] = path
    splits = None if args.split == ["all"] else (args.split or ["test"])
    table = evaluate_models(models, args.test, args.out, splits=splits, protocol=args.protocol)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"report: {args.out / 'report.html'}")
    return 0


def add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="the classifier study on an emulated survey (all comparisons, one report)",
        description="Train and compare, on the same data: ANN1 committee vs a single member, "
        "ANN1 vs ANN2 features, ANN vs random forest, hybridisation off vs on (mock test "
        "split), F1 per r bin beside miniJPAS QSO III, and mocks-only vs target-only vs "
        "SSDA on held-out observed objects. Writes OUT/study.md and OUT/report.html.",
    )
    p.add_argument("--mocks", type=Path, required=True, help="main mock catalogue")
    p.add_argument("--mocks-plain", type=Path, required=True, help="small mocks, no hybrids")
    p.add_argument("--mocks-hybrid", type=Path, required=True, help="the same, hybridised")
    p.add_argument("--sim", type=Path, required=True, help="jpasbatch simulate output (truth)")
    p.add_argument("--catalogue", type=Path, required=True, help="the ingested survey")
    p.add_argument("--out", type=Path, default=Path("study"))
    p.add_argument("--epochs", type=int, default=40, help="epoch limit per committee")
    p.add_argument("--budget", type=int, default=1000, help="labelled observed objects")
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers")
    p.add_argument("--no-ray", action="store_true", help="train in this process")
    p.set_defaults(func=_run_study)


def _run_study(args: argparse.Namespace) -> int:
    from jpasbatch.classify.study import StudySpec, run_study

    spec = StudySpec(
        mocks=args.mocks,
        mocks_plain=args.mocks_plain,
        mocks_hybrid=args.mocks_hybrid,
        catalogue=args.catalogue,
        truth=args.sim / "truth",
        out=args.out,
        epochs=args.epochs,
        budget=args.budget,
        workers=args.workers,
        ray=not args.no_ray,
    )
    tables = run_study(spec)
    for name, table in tables.items():
        print(f"\n{name}\n{table.to_string(float_format=lambda v: f'{v:.3f}')}")
    print(f"\nreport: {args.out / 'report.html'}")
    return 0


def add_transfer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transfer",
        help="leave-one-family-out validation of the classifier recipe",
        description="For each spectral family F (jpasbatch.sim.spectral_families): train a "
        "committee on mocks of every other family, test on F's objects; beside it the "
        "all-families model and the old single-template-set recipe. Mocks with depth errors; "
        "resumable (finished mocks and models are kept). Writes OUT/report.md and "
        "OUT/transfer.json.",
    )
    p.add_argument("--out", type=Path, required=True, help="study folder")
    p.add_argument("--families", nargs="+", help="families to use (default: all)")
    p.add_argument("--n-objects", type=int, default=40_000, help="mock objects per recipe")
    p.add_argument("--members", type=int, default=4, help="committee members")
    p.add_argument("--epochs", type=int, default=15, help="epoch limit per committee")
    p.add_argument("--seed", type=int, default=0, help="mocks and training seed")
    p.add_argument("--ray", action="store_true", help="train under Ray Train (default: in process)")
    p.add_argument("--workers", type=int, default=2, help="Dask workers (and Ray workers)")
    p.add_argument("--fast", action="store_true", help="coarse template grids (tests)")
    p.set_defaults(func=_run_transfer)


def _run_transfer(args: argparse.Namespace) -> int:
    from jpasbatch.classify.transfer import TransferSpec, run_transfer
    from jpasbatch.distribute.dask import dask_client

    fields = {"families": args.families} if args.families else {}
    spec = TransferSpec(
        out=args.out,
        n_objects=args.n_objects,
        members=args.members,
        epochs=args.epochs,
        seed=args.seed,
        ray=args.ray,
        workers=args.workers,
        fast=args.fast,
        **fields,
    )
    with dask_client(n_workers=args.workers) as client:
        result = run_transfer(spec, client=client)
    for recipe, s in result["summary"].items():
        print(
            f"{recipe}: worst held-out family {s['worst_family']} (recall "
            f"{s['worst_recall']:.3f}), mean weighted F1 {s['mean_weighted_f1']:.3f}"
        )
    print(f"report: {args.out / 'report.md'}")
    return 0


def add_publish(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish-model",
        help="make a trained committee or foundation model the package's default",
        description="Copy RUN's model (model.safetensors + model.json) and its real-sky "
        "record (real_sky.json, from `jpasbatch real-check --record`) into the "
        "package's models folder with CARD.json (the job that trained it, its data, the "
        "leave-one-family-out and real-sky figures) and SHA256SUMS. `jpasbatch infer` "
        "without --model / --foundation then uses it.",
    )
    p.add_argument("run", type=Path, help="training run folder")
    p.add_argument("--kind", choices=["classifier", "foundation"], default="classifier",
                   help="what RUN trained")  # fmt: skip
    p.add_argument("--job", type=Path, required=True, help="the job file that trained it")
    p.add_argument("--real-check", type=Path, required=True, help="its real_check.json")
    p.add_argument("--transfer", type=Path, help="transfer.json of the family study")
    p.add_argument("--dest", type=Path, help="destination (default: the package's)")
    p.add_argument("--note", help="how the run departed from the job file, if it did")
    p.set_defaults(func=_run_publish)


def _run_publish(args: argparse.Namespace) -> int:
    from jpasbatch.core import defaults

    card = defaults.build_card(args.run, args.job, args.transfer, args.real_check, args.kind)
    if args.note:
        card["note"] = args.note
    dest = args.dest or defaults.models_dir() / args.kind
    print(f"published: {defaults.publish(args.run, dest, card)}")
    return 0
