"""Command-line options of the distributed engine, and ``predict --engine ray``.

Imported by the CLI to add its options; Ray itself is imported only when a command runs
with ``--engine ray``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from anan_onnx.distributed import ENGINES

__all__ = ["add_engine_options", "add_predict_options", "make_engine", "run_predict"]


def add_engine_options(group: Any) -> None:
    """``--engine`` and ``--address`` (tune, evaluate, predict)."""
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local (default: this process, images streamed in batches) or ray (a Ray "
        "cluster; needs the ray extra)",
    )
    group.add_argument(
        "--address",
        help="Ray cluster to use with --engine ray, e.g. auto or ray://HOST:10001 "
        "(default: start a local one for this run)",
    )


def add_predict_options(p: argparse.ArgumentParser) -> None:
    """predict's --engine, --address, --output, --strict, --workers."""
    g = p.add_argument_group("distributed (--engine ray)")
    add_engine_options(g)
    g.add_argument(
        "--output",
        help="--engine ray: write one row per image here (.parquet, .csv or .jsonl): path, "
        "label, class, probabilities, error",
    )
    g.add_argument(
        "--strict", action="store_true", help="--engine ray: an unreadable image fails the run"
    )
    g.add_argument("--workers", type=int, help="--engine ray: actors (default: the cluster's CPUs)")


def make_engine(args: argparse.Namespace) -> Any:
    """The engine ``--engine`` asks for: None (local) or a RayEngine.

    A local Ray cluster started here is shut down by Ray's own exit handler.
    """
    if getattr(args, "engine", "local") != "ray":
        if getattr(args, "address", None):
            from anan_onnx.errors import AnanError

            raise AnanError("--address needs --engine ray: add --engine ray or drop --address")
        return None
    from anan_onnx.distributed.ray_engine import RayEngine

    return RayEngine(args.address)


def run_predict(args: argparse.Namespace) -> int:
    """``predict --engine ray``."""
    from anan_onnx.distributed.predict import predict_ray
    from anan_onnx.errors import AnanError
    from anan_onnx.limits import positive_int

    if not args.output:
        raise AnanError("--engine ray writes a file: pass --output out.parquet (or .csv, .jsonl)")
    if args.workers is not None:
        positive_int("--workers", args.workers)
    summary = predict_ray(
        args.model,
        args.inputs,
        args.output,
        address=args.address,
        workers=args.workers,
        threads=args.threads,
        batch_size=getattr(args, "batch_size", None) or 64,
        strict=args.strict,
    )
    for path, message in summary.failed:
        print(f"anan-onnx: skipped {path}: {message}", file=sys.stderr)
    ok = summary.images - len(summary.failed)
    print(
        f"predicted {ok} of {summary.images} images in {summary.seconds:.1f} s "
        f"({len(summary.failed)} failed) -> {summary.output}"
    )
    return 0
