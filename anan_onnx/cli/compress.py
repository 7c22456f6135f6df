"""The ``compress`` command (INT8 / FP16 edge models) and ``verify``'s compressed mode.

Examples::

    anan-onnx compress out/cd.anan.onnx --int8 --calibration ../shared/data/cats_dogs/train
    anan-onnx compress out/cd.anan.onnx --fp16 -o out/cd.fp16.anan.onnx
    anan-onnx verify out/cd.int8.anan.onnx --inputs ../shared/data/cats_dogs/test/cats/*.jpg
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx import json_clean

__all__ = ["add_compress", "verify_compressed"]


def add_compress(commands: Any) -> None:
    """Registers ``compress`` on the CLI's subparsers."""
    p = commands.add_parser(
        "compress",
        help="INT8 or FP16 edge model from an ANAN model (astrocytes stay FP32)",
        description="Compress an FP32 ANAN model: INT8 (static QDQ, per-channel weights, "
        "calibrated on images preprocessed as the model records) or FP16 (float32 inputs "
        "and outputs). The astrocyte subgraph, the target Conv and everything feeding them "
        "stay FP32, so the astrocytes' decisions are exact. Also writes the compressed base "
        "model (same ranges, same exclusions) that verify checks against.",
    )
    p.add_argument("model", type=Path, help="the FP32 .anan.onnx model")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--int8", dest="mode", action="store_const", const="int8", help="INT8 QDQ")
    mode.add_argument("--fp16", dest="mode", action="store_const", const="fp16", help="FP16")
    p.add_argument(
        "--calibration",
        type=Path,
        nargs="+",
        metavar="DATA",
        help="--int8: image files or folders (searched recursively) to calibrate on",
    )
    p.add_argument("--calibration-size", type=int, default=100, help="images drawn (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    p.add_argument("-o", "--output", type=Path, help="default: MODEL.int8.anan.onnx / .fp16.")
    p.add_argument("--base", type=Path, help="its FP32 base model (default: recorded beside it)")
    p.add_argument(
        "--include-astrocytes",
        action="store_true",
        help="compress the astrocyte subgraph too: smaller by a few kB, but the decisions "
        "are no longer exact (docs/compression.md)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.set_defaults(func=_cmd_compress)


def _cmd_compress(args: argparse.Namespace) -> int:
    from anan_onnx.compress import compress_file
    from anan_onnx.errors import AnanError

    if args.mode == "int8" and not args.calibration:
        raise AnanError("--int8 needs --calibration DATA: a folder of images the model will see")
    if args.mode == "fp16" and args.calibration:
        raise AnanError("--calibration is for --int8 only: drop it for --fp16")
    result = compress_file(
        args.model,
        args.mode,
        output=args.output,
        base=args.base,
        calibration=args.calibration or (),
        calibration_size=args.calibration_size,
        seed=args.seed,
        include_astrocytes=args.include_astrocytes,
    )
    before = args.model.stat().st_size
    after = result.output.stat().st_size
    kept = "compressed too" if args.include_astrocytes else "FP32"
    print(f"compressed {args.model} ({args.mode})")
    print(f"  model        : {result.output} ({after / before:.2f}x, {after / 1e6:.2f} MB)")
    print(f"  base model   : {result.base_output}")
    print(f"  astrocytes   : {kept} ({result.excluded_nodes} nodes kept FP32)")
    return 0


def verify_compressed(
    args: argparse.Namespace, anan: Any, base: Path, inputs: Iterable[np.ndarray] | None
) -> int:
    """``verify`` of a compressed model: exact vs its compressed base, and vs FP32.

    The input batches are gathered into one (the comparison runs three models on them).
    """
    from anan_onnx.metadata import read_metadata
    from anan_onnx.model_io import load_onnx
    from anan_onnx.reference.compressed import (
        check_compressed_pair,
        fp32_agreement,
        fp32_model_path,
        verify_compressed_models,
    )
    from anan_onnx.reference.verify import random_inputs
    from anan_onnx.runtime.session import Session

    base_model = load_onnx(base)
    check_compressed_pair(read_metadata(anan), read_metadata(base_model))
    session = Session(anan, provider=args.provider)
    fp32 = Session(fp32_model_path(args.model, read_metadata(anan), args.fp32))
    batch = random_inputs(session, args.n, args.seed) if inputs is None else _gather(inputs)
    report = verify_compressed_models(
        anan, base_model, batch, tolerance=args.tolerance, provider=args.provider
    )
    loss = fp32_agreement(session, fp32, batch)
    if args.json:
        doc = dict(report.as_dict(), compression=session.metadata["compression"])
        doc["fp32"] = dict(
            images=loss.images, agreeing=loss.agreeing, agreement=loss.agreement,
            max_abs_diff=loss.max_abs_diff,
        )  # fmt: skip
        print(json_clean.dumps(doc))
    else:
        print(f"{report.summary()} [literal loop on the compressed base]")
        print(loss.summary())
    return 0 if report.passed else 1


def _gather(batches: Iterable[np.ndarray]) -> np.ndarray:
    from anan_onnx.errors import AnanError

    arrays = [np.asarray(b, np.float32) for b in batches]
    if not arrays:
        raise AnanError("no inputs to verify: pass image files or .npy batches")
    return np.concatenate(arrays)
