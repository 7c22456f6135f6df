"""``anan-onnx export``: an ANAN model made ready for onnxruntime-web, mobile or a minimal
onnxruntime build (the work is :mod:`anan_onnx.export`; no TensorFlow on this path)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from anan_onnx.cli.arg_types import count

__all__ = ["add_command"]

# the choices as literals (anan_onnx.export.TARGETS, SIMPLIFIERS; tests/export checks they
# agree): importing the export package loads onnxruntime's tools, too slow for --help
_TARGETS = ("web", "mobile", "ort", "openvino", "litert")
_SIMPLIFIERS = ("auto", "onnxsim", "onnxslim", "none")


def add_command(commands: argparse._SubParsersAction) -> None:
    """Registers ``export`` on the CLI's subcommands."""
    p = commands.add_parser(
        "export",
        help="ANAN model -> files for onnxruntime-web, mobile or a minimal onnxruntime",
        description="Make an ANAN model ready for a deployment target: fix the batch where "
        "the target needs static shapes, simplify, write the model, its sidecar "
        "MODEL.anan.json and (ort, mobile) the .ort file with the operator config of a "
        "minimal onnxruntime build. Every file is checked exact against the input model "
        "before any of them is written. --target mobile also prints how NNAPI and CoreML "
        "would partition the graph.",
    )
    p.add_argument("model", type=Path, help="the .anan.onnx model (from anan-onnx convert)")
    p.add_argument("--target", required=True, choices=_TARGETS, help="deployment target")
    p.add_argument(
        "-o",
        "--output",
        help="output folder (default: STEM.TARGET/ beside the model) or the exported .onnx path",
    )
    p.add_argument(
        "--batch",
        type=count(1),
        help="fix the batch size (default: 1 for mobile; the model's own for web and ort)",
    )
    p.add_argument(
        "--simplifier",
        choices=_SIMPLIFIERS,
        default="auto",
        help="graph simplifier (default auto: onnxsim if installed, else onnxslim, else none; "
        "measured in docs/deployment.md)",
    )
    p.add_argument(
        "--raw-input",
        action="store_true",
        help="the exported model takes uint8 NHWC pixels (0-255, RGB) and carries the "
        "recorded scale, offset, channel order and layout as standard ops (resize stays "
        "with the caller; docs/engines.md)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from anan_onnx.export import export_model

    start = time.perf_counter()
    result = export_model(
        args.model,
        args.target,
        args.output,
        batch=args.batch,
        simplifier=args.simplifier,
        raw_input=args.raw_input,
    )
    seconds = time.perf_counter() - start
    print(f"exported {args.model} for {result.target} in {seconds:.1f} s")
    print(f"  batch      : {result.batch_note}")
    print(
        f"  simplified : {result.simplifier} ({result.nodes_before} -> {result.nodes_after} nodes)"
    )
    for path in result.files:
        print(f"  wrote      : {path} ({path.stat().st_size / 1024:.1f} KiB)")
    for report in result.exactness:
        print(f"  exact      : {report.line()}")
    for ep in result.mobile:
        print(f"  mobile     : {ep.line()}")
    return 0
