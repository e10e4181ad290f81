"""Options shared by the training commands: the Ray ones, and flags to spec fields."""

from __future__ import annotations

import argparse
from collections.abc import Iterable


def add_ray_options(p: argparse.ArgumentParser, *, max_failures: bool = True) -> None:
    """``--workers``, ``--gpu``, ``--no-ray``, ``--ray-address`` (and ``--max-failures``)."""
    p.add_argument("--workers", type=int, help="Ray Train workers (default 2)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--no-ray", action="store_true", help="train in this process, without Ray")
    p.add_argument("--ray-address", help="an existing Ray cluster (default: start a local one)")
    if max_failures:
        p.add_argument("--max-failures", type=int, help="retries of a failed run (default 1)")


def ray_flags(args: argparse.Namespace) -> dict:
    """The spec fields of :func:`add_ray_options`' flags (None: not given)."""
    flags = {
        "workers": args.workers,
        "ray_address": args.ray_address,
        "use_gpu": args.gpu or None,
        "ray": False if args.no_ray else None,
    }
    if hasattr(args, "max_failures"):
        flags["max_failures"] = args.max_failures
    return flags


def spec_flags(args: argparse.Namespace, fields: Iterable[str]) -> dict:
    """Spec fields from the flags of the same name (``--batch-size`` -> ``batch_size``)."""
    return {name: getattr(args, name) for name in fields}
