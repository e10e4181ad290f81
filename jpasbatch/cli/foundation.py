"""The foundation-model sub-commands: ``foundation-train``, ``foundation-predict`` and
``foundation-evaluate`` (its mocks: ``jpasbatch mocks --extras``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jpasbatch.cli.train_options import add_ray_options, ray_flags, spec_flags
from jpasbatch.core import atomic
from jpasbatch.pipeline.specs import spec_from


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "foundation-train",
        help="train the OJALA-style foundation model (Ray Train)",
        description="Masked multi-token training of the transformer foundation model on "
        "MOCK_EXT mocks (SPLIT=train; SPLIT=validation picks the best epoch), optionally "
        "with weighted-MMD domain adaptation to an unlabelled observed catalogue "
        "(--observed, --external). Runs on Ray Train with a checkpoint per epoch: rerun "
        "the same command (same --out and --name) after an interruption and it resumes. "
        "Writes OUT/NAME/model.json + model.safetensors, history.csv and history.png.",
    )
    p.add_argument("inputs", nargs="*", type=Path, help="MOCK_EXT Parquet files or folders")
    p.add_argument("--spec", type=Path, help="a YAML job spec (FoundationSpec fields)")
    p.add_argument("--out", type=Path, help="runs folder (default: runs)")
    p.add_argument("--name", help="run name (default: foundation)")
    p.add_argument("--observed", nargs="+", type=Path, help="unlabelled observed catalogue")
    p.add_argument("--external", nargs="+", type=Path, help="its external photometry")
    p.add_argument("--exclude", nargs="+", type=Path, help="test sets to leave out of it")
    p.add_argument("--mmd", action="store_true", default=None, help="domain adaptation on")
    p.add_argument("--epochs", type=int, help="epoch limit (default 20)")
    p.add_argument("--steps-per-epoch", type=int, help="optimiser steps per epoch")
    p.add_argument("--batch-size", type=int, help="per-worker batch (default 256)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (default 3e-4)")
    add_ray_options(p)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from jpasbatch.foundation.train import FoundationSpec, train

    fields = ("out", "name", "observed", "external", "exclude", "mmd", "epochs",
              "steps_per_epoch", "batch_size", "lr", "seed")  # fmt: skip
    flags = {"train": args.inputs or None} | spec_flags(args, fields) | ray_flags(args)
    spec = spec_from(FoundationSpec, args.spec, flags)
    print(f"model: {train(spec)}")
    return 0


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "foundation-predict",
        help="class probabilities, photo-z, physical parameters and embeddings",
        description="Run a trained foundation model on an OBSERVED-schema table (extra "
        "columns such as the external bands are used when present) and write its "
        "columns (P_<CLASS>, Z_PHOT, Z_PHOT_ERR, <PARAM>, <PARAM>_ERR, N_CONTEXT) with "
        "OBJECT_ID to Parquet, and the embeddings to an .npy file beside it.",
    )
    p.add_argument("model", type=Path, help="model.json (or its run folder)")
    p.add_argument("table", type=Path, help="input Parquet file")
    p.add_argument("--out", required=True, type=Path, help="output Parquet file")
    p.add_argument("--external", nargs="+", type=Path, help="external photometry to join")
    p.add_argument(
        "--context",
        default="all",
        help="tokens to condition on: 'all' (default) or groups / names joined by '+', "
        "e.g. T1+T2+broad+morph (groups: all, jpas, narrow, T1, T2, broad, external, morph)",
    )
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--batch-size", type=int, help="objects per forward pass (default: 64 on CPU, 4096 on GPU)"
    )
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jpasbatch.foundation.data import join_external, read_external
    from jpasbatch.foundation.predict import FoundationPredictor

    pred = FoundationPredictor.load(args.model)
    table = pq.read_table(args.table)
    if args.external:
        table = join_external(table, read_external(args.external))
    cols, arrays = pred.predict(
        table, args.context, args.batch_size, dtype=args.dtype, device=args.device
    )
    out = pa.table({"OBJECT_ID": table["OBJECT_ID"]} | cols)
    meta = {b"foundation_model_checksum": pred.checksum.encode()}
    atomic.write_parquet(out.replace_schema_metadata(meta), args.out)
    np.save(args.out.with_suffix(".embedding.npy"), arrays["EMBEDDING"])
    print(f"wrote {args.out} ({out.num_rows:,} rows) and its embeddings")
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "foundation-evaluate",
        help="HTML evaluation report of foundation models on Test-Synth / Test-Real",
        description="Balanced purity / completeness / F1 per class vs i magnitude, photo-z "
        "bias / sigma_NMAD / outliers vs magnitude and redshift for galaxies and QSOs, "
        "physical parameters, each on Test-Synth and Test-Real, for every model given "
        "(e.g. with and without domain adaptation) and the context ablations (all; "
        "T1+T2+BB+M; T1+BB+M); with --truth, also the fine-tuning experiment. OJALA's "
        "numbers are shown beside. Writes OUT/report.html, metrics.json, headline.csv.",
    )
    p.add_argument("models", nargs="+", help="LABEL=path/to/model.json")
    p.add_argument(
        "--test-dir",
        required=True,
        type=Path,
        help="folder with test_real.parquet, test_synth.parquet (and the _deep ones)",
    )
    p.add_argument("--truth", type=Path, help="the emulator's truth/ folder (fine-tuning)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from jpasbatch.core.errors import InputError
    from jpasbatch.foundation.report import evaluation_report

    models = {}
    for item in args.models:
        label, sep, path = item.partition("=")
        if not sep:
            raise InputError("models are given as LABEL=path/to/model.json", path=item)
        models[label] = Path(path)
    tests = {p.stem: p for p in sorted(args.test_dir.glob("test_*.parquet"))}
    if not {"test_real", "test_synth"} <= set(tests):
        raise InputError("no test_real.parquet / test_synth.parquet", path=args.test_dir)
    res = evaluation_report(models, tests, args.out, truth=args.truth)
    print(res["headline"].to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"report: {args.out / 'report.html'}")
    return 0
