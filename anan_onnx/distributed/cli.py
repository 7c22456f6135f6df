"""Command-line options of the distributed engine, and ``predict --engine ray``.

Imported by the CLI to add its options; Ray itself is imported only when a command runs
with ``--engine ray``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from anan_onnx.distributed import ENGINES
from anan_onnx.errors import AnanError
from anan_onnx.limits import positive_int

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
    """predict's --inputs-from, -o, --max-failed, --block-images, and the engine's options."""
    from anan_onnx.distributed.parts import DEFAULT_BLOCK
    from anan_onnx.distributed.predict import DEFAULT_RETRIES

    p.add_argument(
        "--inputs-from",
        action="append",
        default=[],
        metavar="FILE",
        help="a list file: one input per line (relative to the list's folder; - reads "
        "standard input); as @FILE among the inputs; repeatable",
    )
    g = p.add_argument_group("outputs (-o; --engine ray needs a folder)")
    g.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR|FILE",
        help="a folder: one Parquet file per part of the inputs (part-*.parquet: input, "
        "label, class, probabilities, error), failed rows in DIR/errors/, counts and "
        "checksums in DIR/manifest.json, and a rerun with the same DIR resumes; or a "
        "FILE.jsonl / FILE.csv (local engine): the same rows, streamed into one file",
    )
    g.add_argument(
        "--max-failed",
        default="0",
        metavar="N|P%",
        help="inputs allowed to fail (unreadable, non-finite output) before the exit "
        "status is non-zero (default 0: any failure is an error, with the count)",
    )
    g.add_argument(
        "--block-images",
        type=int,
        default=DEFAULT_BLOCK,
        metavar="N",
        help=f"inputs per part (default {DEFAULT_BLOCK}): the unit of work, of retries and "
        "of resumption",
    )
    d = p.add_argument_group("distributed (--engine ray)")
    add_engine_options(d)
    d.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"--engine ray: passes after one that fails (a lost node; default "
        f"{DEFAULT_RETRIES}): each part is computed at most N + 1 times",
    )
    d.add_argument("--workers", type=int, help="--engine ray: most actors (default: the "
                   "cluster's CPUs / --threads); the pool shrinks when nodes leave")  # fmt: skip


def make_engine(args: argparse.Namespace) -> Any:
    """The engine ``--engine`` asks for: None (local) or a RayEngine.

    A local Ray cluster started here is shut down by Ray's own exit handler.
    """
    if getattr(args, "engine", "local") != "ray":
        if getattr(args, "address", None):
            raise AnanError("--address needs --engine ray: add --engine ray or drop --address")
        return None
    from anan_onnx.distributed.ray_engine import RayEngine

    return RayEngine(args.address)


def run_predict(args: argparse.Namespace) -> int:
    """``predict -o DIR`` (either engine): partitioned outputs and a count of failures."""
    from anan_onnx.distributed.predict import JobOptions, allowed_failures, predict_parts
    from anan_onnx.runtime.session import providers_for

    if args.workers is not None:
        positive_int("--workers", args.workers)
    positive_int("--block-images", args.block_images)
    if args.retries < 0:
        raise AnanError(f"--retries must be 0 or more, got {args.retries}")
    allowed_failures(args.max_failed, 0)  # checked before any work
    providers_for(args.provider)  # likewise: each part's session runs on it
    if args.engine == "ray":
        _quiet_ray_data()
    options = JobOptions(
        block=args.block_images,
        batch_size=getattr(args, "batch_size", None) or JobOptions.batch_size,
        threads=args.threads or 1,
        workers=args.workers,
        retries=args.retries,
        provider=args.provider,
    )
    summary = predict_parts(
        args.model,
        args.inputs,
        args.output,
        inputs_from=args.inputs_from,
        engine=args.engine,
        address=args.address,
        options=options,
    )
    resumed = f", {summary.resumed} parts resumed" if summary.resumed else ""
    print(
        f"predicted {summary.images - summary.failed} of {summary.images} inputs in "
        f"{summary.parts} parts, {summary.seconds:.1f} s ({summary.failed} failed{resumed}) "
        f"-> {summary.output}"
    )
    if summary.failed > allowed_failures(args.max_failed, summary.images):
        raise AnanError(
            f"{summary.failed} of {summary.images} inputs failed (first: {summary.first_error}); "
            f"their rows are in {summary.output / 'errors'}: fix or remove them, or allow "
            f"some with --max-failed (now {args.max_failed})"
        )
    return 0


def _quiet_ray_data() -> None:
    """No Ray Data INFO lines, nor its log of an error the command reports in one line."""
    try:
        import ray.data  # noqa: F401 - configures its loggers: set the level after that
    except ImportError:
        return  # predict_parts gives the install hint
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
