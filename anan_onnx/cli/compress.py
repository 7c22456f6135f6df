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

__all__ = ["add_compress", "add_min_agreement", "verify_compressed"]


def add_min_agreement(p: argparse.ArgumentParser, what: str) -> None:
    """``--min-agreement``: one option, one default, for ``compress`` and ``verify``."""
    from anan_onnx.runtime.agreement import MIN_AGREEMENT

    p.add_argument(
        "--min-agreement",
        type=_share,
        default=MIN_AGREEMENT,
        metavar="SHARE",
        help=f"{what} (default {MIN_AGREEMENT})",
    )


def _share(text: str) -> float:
    """An argparse type: a share in [0, 1]."""
    from anan_onnx.errors import AnanError
    from anan_onnx.runtime.agreement import check_fraction

    try:
        return check_fraction(float(text))
    except (ValueError, AnanError) as exc:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text}") from exc


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
    from anan_onnx.compress.options import CALIBRATION_METHODS

    p.add_argument("model", type=Path, help="the FP32 .anan.onnx model")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--int8", dest="mode", action="store_const", const="int8", help="INT8 QDQ")
    mode.add_argument("--fp16", dest="mode", action="store_const", const="fp16", help="FP16")
    p.add_argument(
        "--calibration",
        type=Path,
        nargs="+",
        metavar="DATA",
        help="image files or folders (searched recursively): --int8 calibrates on some of "
        "them; both modes measure agreement with the FP32 model on others, held back",
    )
    p.add_argument("--calibration-size", type=int, default=100, help="images drawn (default 100)")
    p.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        default="minmax",
        help="--int8: onnxruntime's range estimator (default minmax)",
    )
    p.add_argument(
        "--check-size",
        type=int,
        default=100,
        help="held-back images to measure agreement with FP32 on (default 100)",
    )
    add_min_agreement(p, "warn when fewer held-back images than this share get the FP32 class")
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
    if args.check_size < 0:
        raise AnanError(f"--check-size must be >= 0, got {args.check_size}")
    result = compress_file(
        args.model,
        args.mode,
        output=args.output,
        base=args.base,
        calibration=args.calibration or (),
        calibration_size=args.calibration_size,
        calibration_method=args.calibration_method,
        check_size=args.check_size,
        seed=args.seed,
        include_astrocytes=args.include_astrocytes,
        min_agreement=args.min_agreement,
    )
    before = args.model.stat().st_size
    after = result.output.stat().st_size
    kept = "compressed too" if args.include_astrocytes else "FP32"
    print(f"compressed {args.model} ({args.mode})")
    print(f"  model        : {result.output} ({after / before:.2f}x, {after / 1e6:.2f} MB)")
    print(f"  base model   : {result.base_output}")
    print(f"  astrocytes   : {kept} ({result.excluded_nodes} nodes kept FP32)")
    if result.wide_nodes:
        print(f"  kept FP32    : {len(result.wide_nodes)} tail node(s) whose weights exceed "
              f"float16's range ({', '.join(result.wide_nodes[:3])})")  # fmt: skip
    if args.mode == "int8":
        print(f"  calibration  : {args.calibration_method}")
    if result.agreement is None:
        print("  vs FP32      : not measured (no held-back images: pass --calibration DATA)")
    else:
        print(f"  held back    : {result.agreement.summary(args.min_agreement)}")
    return 0


def verify_compressed(
    args: argparse.Namespace, anan: Any, base: Path, inputs: Iterable[np.ndarray] | None
) -> int:
    """``verify`` of a compressed model: exact vs its compressed base, agreeing with FP32.

    The inputs are streamed in chunks of ``--batch-size``. The FP32 agreement is measured
    on ``--inputs`` only: random pixels put a CNN's every output near its decision
    boundary, where a correct INT8 model may disagree and a damaged one agree, so on them
    it is reported as not measured and kept out of PASS/FAIL.
    """
    from anan_onnx.metadata import read_metadata
    from anan_onnx.model_io import load_onnx
    from anan_onnx.reference.compressed import fp32_model_path, verify_compressed_models
    from anan_onnx.reference.pairing import check_compressed_pair
    from anan_onnx.reference.verify import random_batches
    from anan_onnx.runtime.session import Session

    base_model = load_onnx(base)
    meta = read_metadata(anan)
    check_compressed_pair(meta, read_metadata(base_model))
    fp32 = fp32_model_path(args.model, meta, args.fp32) if inputs is not None else None
    session = Session(anan, provider=args.provider)
    size = session.checked_batch_size(args.batch_size) if args.batch_size else None
    if inputs is None:
        inputs = random_batches(session, args.n, args.seed, size or session.default_batch_size())
    else:  # verify's named batches (ImageBatch): the arrays only, no per-image lines here
        inputs = (getattr(batch, "x", batch) for batch in inputs)
    report = verify_compressed_models(
        anan, base_model, inputs, fp32=fp32, fp32_not_measured=RANDOM_INPUTS,
        min_agreement=args.min_agreement, tolerance=args.tolerance, provider=args.provider,
        batch_size=size,
    )  # fmt: skip
    if args.json:
        print(json_clean.dumps(dict(report.as_dict(), compression=meta["compression"])))
    else:
        print(report.summary())
    return 0 if report.passed else 1


#: why verify does not measure the FP32 agreement without --inputs
RANDOM_INPUTS = "random inputs: pass --inputs with real images"
