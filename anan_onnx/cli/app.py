"""The ``anan-onnx`` command line: convert, inspect, predict, verify.

Every user error ends in one line on stderr (``anan-onnx: error: ...``) and exit status 2;
``verify`` exits 1 when the models disagree. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anan_onnx import json_clean
from anan_onnx.cli.arg_types import add_options, options_from
from anan_onnx.cli.arg_types import count as _count
from anan_onnx.cli.preprocess_options import add_preprocess_options
from anan_onnx.cli.process import configure_process
from anan_onnx.cli.signals import Terminated, terminate_cleanly
from anan_onnx.cli.warning_filters import quiet_library_warnings
from anan_onnx.distributed.cli import add_predict_options
from anan_onnx.errors import AnanError
from anan_onnx.metadata import class_names, is_anan
from anan_onnx.options import ConvertOptions
from anan_onnx.params import PARAMS, AnanParams
from anan_onnx.text import shown

if TYPE_CHECKING:
    from anan_onnx.reference.verify import VerifyReport

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit status 2, and no abbreviations:
    a unique prefix of an option would otherwise be accepted, and every prefix would become
    an interface that a new option can break."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if "arguments are required" in message or _dashed_files(message):
            message += "; a file name starting with '-' goes after --, e.g. -- -x.png"
        self.exit(2, f"{self.prog}: error: {shown(message)} (see {self.prog} --help)\n")


def _dashed_files(message: str) -> bool:
    """Whether an "unrecognized arguments" error names a file starting with '-': one that
    exists, or a name with a suffix or a folder (``-x.png``; options have neither)."""
    _, sep, rest = message.partition("unrecognized arguments: ")
    return bool(sep) and any(
        t.startswith("-") and (os.path.exists(t) or "." in t or "/" in t) for t in rest.split()
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit status."""
    parser = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the subcommand's --help, not the top level's
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_process()
    with warnings.catch_warnings(), terminate_cleanly():
        quiet_library_warnings()
        try:
            status = int(args.func(args) or 0)
            sys.stdout.flush()  # a full disk shows here, not as a traceback at exit
            return status
        except AnanError as exc:
            if args.debug:
                raise
            print(f"anan-onnx: error: {shown(exc)}", file=sys.stderr)
            return 2
        except Warning as exc:  # made an error by -W error / PYTHONWARNINGS=error
            if args.debug:
                raise
            print(
                f"anan-onnx: error: {shown(exc, 200)} ({type(exc).__name__}, a warning made "
                "an error by -W or PYTHONWARNINGS; --debug shows where)",
                file=sys.stderr,
            )
            return 2
        except KeyboardInterrupt:
            print("anan-onnx: interrupted", file=sys.stderr)
            return 130
        except Terminated as exc:  # temp files are gone: the finally blocks ran
            print(f"anan-onnx: terminated by signal {exc.signum}", file=sys.stderr)
            return 128 + exc.signum
        except BrokenPipeError:  # e.g. `anan-onnx inspect m.onnx | head`
            sys.stderr.close()
            return 0
        except OSError as exc:
            if not _stdout_failed(exc):
                raise
            print(
                f"anan-onnx: error: cannot write the output ({exc.strerror}): free space "
                "or redirect stdout elsewhere",
                file=sys.stderr,
            )
            return 2


_WRITE_ERRORS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG}


def _stdout_failed(exc: OSError) -> bool:
    """Whether ``exc`` is a failure to write output (``> /dev/full``: ENOSPC; EIO; EDQUOT;
    EFBIG) that reached here: files are written through model_io, which turns these into
    AnanErrors, so what is left is stdout. If so, stdout is pointed at /dev/null so that
    the flush at exit does not fail again."""
    if exc.errno not in _WRITE_ERRORS:
        return False
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return True


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="anan-onnx",
        description="Astrocyte-modulated CNNs (ANAN) as standard ONNX models.",
        epilog="Run 'anan-onnx COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.set_defaults(debug=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _add_convert(commands)
    _add_inspect(commands)
    _add_predict(commands)
    _add_verify(commands)
    from anan_onnx.cli.compress import add_compress
    from anan_onnx.cli.evaluation import add_commands

    add_compress(commands)
    add_commands(commands)
    from anan_onnx.cli.export import add_command as add_export

    add_export(commands)
    for sub in commands.choices.values():
        sub.set_defaults(parser=sub)  # so that main() can point to the subcommand's --help
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_params(p: argparse.ArgumentParser) -> None:
    """One option per ANAN parameter (``--k`` ...), from :data:`anan_onnx.params.PARAMS`."""
    g = p.add_argument_group("ANAN parameters (docs/algorithm.md explains each)")
    for q in PARAMS:
        kind = {"choices": q.choices} if q.is_option else {"type": q.kind}
        g.add_argument(
            f"--{q.name}", default=q.default, help=f"{q.help} (default {q.default_text})", **kind
        )


def _params(args: argparse.Namespace) -> AnanParams:
    return AnanParams(**{q.name: getattr(args, q.name) for q in PARAMS})


def _batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch-size",
        type=_count(1),
        metavar="N",
        help="inputs per run, streamed (default: sized to about 512 MiB per batch; a model "
        "converted with --batch runs its own size)",
    )


def _tolerance(text: str) -> float:
    """An argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


# --- convert -------------------------------------------------------------------------------


def _add_convert(commands) -> None:
    p = commands.add_parser(
        "convert",
        help="Keras/ONNX CNN -> ANAN ONNX model",
        description="Export a trained CNN (.keras, .h5 or .onnx) to ONNX and rewrite its first "
        "convolution (or --layer) into the unrolled k-step astrocyte subgraph. Writes the ANAN "
        "model and, next to it, the base ONNX model (used by verify and evaluate).",
        epilog="The algorithm and every option: docs/algorithm.md in the repository.",
    )
    p.add_argument("source", type=Path, help="trained model: .keras, .h5 or .onnx")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="ANAN model path (default: SOURCE_NAME.anan.onnx in the current directory)",
    )
    p.add_argument("--base-output", type=Path, help="base ONNX path (default: OUTPUT .base.onnx)")
    _add_params(p)
    add_options(p.add_argument_group("graph"), ConvertOptions)  # anan_onnx.options
    add_preprocess_options(p)
    g = p.add_argument_group("classes")
    g.add_argument(
        "--classes",
        metavar="NAMES|DIR",
        help="class names in output order, recorded in the model: a comma list (cats,dogs) "
        "or the data set folder (its class sub-folders); default: training.json beside SOURCE",
    )
    p.add_argument(
        "--verify",
        type=_count(0),
        default=0,
        metavar="N",
        help="check N random inputs against the literal reference after converting",
    )
    p.add_argument("--provider", default="cpu", help="execution provider for --verify")
    _common(p)
    p.set_defaults(func=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    from anan_onnx.cli.describe import describe_input, describe_sources
    from anan_onnx.cli.inference import target_text
    from anan_onnx.cli.preprocess_options import preprocess_request
    from anan_onnx.convert.classes import parse_classes
    from anan_onnx.convert.pipeline import convert_file

    params = _params(args)
    # default: the current directory (not beside the source, e.g. in a read-only models/)
    output = args.output or Path(args.source.stem + ".anan.onnx")
    classes = parse_classes(args.classes) if args.classes else None
    start = time.perf_counter()
    verified = _Verifier(args, output) if args.verify else None
    try:
        result = convert_file(
            args.source,
            output,
            params,
            options_from(args, ConvertOptions),
            preprocess=preprocess_request(args),
            base_output=args.base_output,
            classes=classes,
            check=verified,
        )
    except _VerifyFailed as exc:  # exit 1 like `verify`: the models disagree
        print(f"anan-onnx: error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    meta = _meta(result.anan)
    base_path = output.with_name(meta["base_model"])
    print(f"converted {shown(args.source)} in {seconds:.1f} s")
    print(f"  target layer : {shown(target_text(_meta(result.anan)))}")
    print(f"  parameters   : {params.describe()}")
    print(f"  input        : {shown(describe_input(meta))}")
    for line in describe_sources(meta):
        print(f"                 {shown(line)}")
    names = class_names(meta)
    if names:
        print(f"  classes      : {shown(', '.join(names))}")
    print(f"  ANAN model   : {shown(output)} ({len(result.anan.graph.node)} nodes)")
    print(f"  base model   : {shown(base_path)} ({len(result.base.graph.node)} nodes)")
    if verified is not None and verified.report is not None:
        print(f"  verify       : {verified.report.summary()}")
    return 0


class _VerifyFailed(AnanError):
    """``convert --verify`` found a disagreement; nothing was written."""


class _Verifier:
    """``convert --verify N``: the literal reference on the temp files, before the rename,
    so that a failed check never replaces an existing model."""

    def __init__(self, args: argparse.Namespace, output: Path) -> None:
        self.n, self.provider, self.output = args.verify, args.provider, output
        self.report: VerifyReport | None = None

    def __call__(self, anan_file: str, base_file: str) -> None:
        from anan_onnx.reference.verify import verify_models

        report = verify_models(anan_file, base_file, n=self.n, provider=self.provider)
        self.report = report
        if not report.passed:
            raise _VerifyFailed(
                f"verification failed ({report.summary()}): nothing was written, "
                f"{self.output} is unchanged; please report this with the model"
            )


# --- inspect -------------------------------------------------------------------------------


def _add_inspect(commands) -> None:
    p = commands.add_parser(
        "inspect",
        help="show ANAN metadata, target layer and op counts",
        description="Describe an ONNX model: ANAN metadata (parameters, "
        "target layer, source), inputs/outputs, opset and op counts.",
    )
    p.add_argument("model", type=Path, help=".onnx model (ANAN or base)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _common(p)
    p.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from anan_onnx.cli.inference import cmd_inspect  # no TF on this path (import contract)

    return cmd_inspect(args)


# --- predict -------------------------------------------------------------------------------


def _add_predict(commands) -> None:
    p = commands.add_parser(
        "predict",
        help="run a model on images or .npy batches",
        description="Predict with a base or ANAN model. Image files are "
        "resized and scaled as recorded in the model; .npy files must "
        "already be float batches in the model's layout.",
    )
    p.add_argument("model", type=Path, help=".onnx model")
    p.add_argument(
        "inputs",
        nargs="*",
        help="image files, .npy batches, folders (their images, recursively), @list files, "
        "globs; with -o DIR also URIs (s3://bucket/prefix)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--provider", default="cpu", help="execution provider: cpu (default), cuda")
    p.add_argument("--threads", type=_count(1), help="intra-op threads")
    _batch_size(p)
    add_predict_options(p)
    _common(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    if not args.inputs and not args.inputs_from:
        raise AnanError("no inputs: pass image files, folders, @list files or --inputs-from")
    from anan_onnx.cli.inference import FILE_OUTPUTS, cmd_predict  # no TF (import contract)

    if args.output is not None and args.json:
        raise AnanError("--json prints to stdout, -o writes a file or folder: pass one of them")
    is_file = args.output is not None and args.output.suffix.lower() in FILE_OUTPUTS
    if is_file and args.engine == "ray":
        raise AnanError("--engine ray writes a folder of parts: pass -o DIR (no .jsonl/.csv)")
    if args.output is not None and not is_file:  # distributed: parts written where they run
        from anan_onnx.distributed.cli import run_predict

        return run_predict(args)
    if args.engine == "ray":
        raise AnanError("--engine ray writes a folder: pass -o DIR")
    if args.address or args.workers:
        raise AnanError("--address and --workers need --engine ray")
    return cmd_predict(args)


# --- verify --------------------------------------------------------------------------------


def _add_verify(commands) -> None:
    from anan_onnx.cli.compress import add_min_agreement

    p = commands.add_parser(
        "verify",
        help="check an ANAN model against the literal reference",
        description="Run the ANAN model and the literal per-image "
        "loop (k+1 runs of the base model per image) on the same inputs; "
        "report the share of agreeing predictions and the max abs "
        "difference. Exit 1 on disagreement.",
    )
    p.add_argument("model", type=Path, help="the .anan.onnx model")
    p.add_argument(
        "--base",
        type=Path,
        help="its base ONNX model (default: the base_model recorded next to it)",
    )
    p.add_argument("-n", "--n", type=_count(1), default=16, help="random inputs (default 16)")
    p.add_argument("--inputs", type=Path, nargs="+", help="image files or .npy batches instead")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--tolerance", type=_tolerance, default=1e-5, help="max abs diff (default 1e-5)")
    p.add_argument("--provider", default="cpu", help="execution provider: cpu (default), cuda")
    _engine_options(p)
    p.add_argument(
        "--fp32",
        type=Path,
        help="compressed model: the FP32 .anan.onnx to compare predictions with "
        "(default: the fp32_model recorded next to it)",
    )
    add_min_agreement(
        p, "compressed model: fail when fewer inputs than this share get the FP32 model's class"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _batch_size(p)
    _common(p)
    p.set_defaults(func=_cmd_verify)


def _engine_options(p: argparse.ArgumentParser) -> None:
    """verify's --engine and --engine-precision (docs/engines.md)."""
    from anan_onnx.runtime.engines import ENGINES

    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="ort",
        help="run the ANAN model on this engine with a deployment's settings, its default "
        "precision included, and say PASS/FAIL per image (default ort: onnxruntime)",
    )
    p.add_argument(
        "--engine-precision",
        choices=("f32", "bf16", "f16"),
        help="pin the engine's inference precision (OpenVINO's INFERENCE_PRECISION_HINT) "
        "instead of its default",
    )
    p.add_argument(
        "--margin",
        action="store_true",
        help="report each input's decision margin: how close a kernel statistic came to "
        "its threshold, relative to its scale (on by default with --engine)",
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from anan_onnx.files import check_regular
    from anan_onnx.model_io import load_onnx, recorded_file
    from anan_onnx.reference.verify import verify_models

    anan = load_onnx(args.model)
    meta = _meta(anan)
    if not is_anan(meta):
        raise AnanError(f"{args.model} is not an ANAN model: pass the .anan.onnx file")
    if "raw_input" in meta:  # its pixel input is no longer the base model's input
        raise AnanError(
            f"{args.model} was exported with --raw-input: verify the .anan.onnx before "
            "export --raw-input"
        )
    base = args.base or recorded_file(args.model, meta, "base_model", "--base")
    if not args.base and not base.exists():
        raise AnanError(f"base model {base} not found: pass --base with the base ONNX model")
    check_regular(base, "base model")
    inputs = _iter_inputs(args.model, args.inputs, args.batch_size) if args.inputs else None
    if "compression" in meta and args.engine != "ort":
        raise AnanError("verify --engine checks FP32 ANAN models: pass the .anan.onnx model")
    if "compression" in meta and (args.engine_precision or args.margin):
        flag = "--engine-precision" if args.engine_precision else "--margin"
        raise AnanError(
            f"verify of a compressed model takes no {flag}: verify the FP32 .anan.onnx with it"
        )
    if "compression" in meta:  # compressed: also compare with the FP32 model it came from
        from anan_onnx.cli.compress import verify_compressed

        return verify_compressed(args, anan, base, inputs)
    report = verify_models(
        anan,
        base,
        inputs=inputs,
        n=args.n,
        seed=args.seed,
        tolerance=args.tolerance,
        provider=args.provider,
        batch_size=args.batch_size,
        engine=args.engine,
        precision=args.engine_precision,
        margin=args.margin or args.engine != "ort",
    )
    if (args.engine != "ort" or args.margin) and not args.json:
        print("\n".join(r.line() for r in report.per_image))
    print(json_clean.dumps(report.as_dict()) if args.json else report.summary())
    return 0 if report.passed else 1


def _iter_inputs(model: Path, paths: list[Path], batch_size: int | None) -> Iterator[Any]:
    """verify's --inputs as a stream of named batches, in the order given (memory bounded
    by one batch)."""
    from anan_onnx.cli.inference import _groups, batch_size_of
    from anan_onnx.runtime.image_files import ImageBatch, iter_image_batches
    from anan_onnx.runtime.npy import load_npy
    from anan_onnx.runtime.session import Session

    session = Session(model)
    size = batch_size_of(session, batch_size, paths)
    images = any(p.suffix.lower() != ".npy" for p in paths)
    spec = session.input_spec() if images else None
    if images and spec is None:
        raise AnanError("the model records no input size: pass .npy batches")
    for group, is_npy in _groups(paths):
        if not is_npy and spec is not None:
            yield from iter_image_batches(group, spec, batch_size=size, progress=True)
            continue
        for path in group:
            array = load_npy(path)  # memory-mapped
            if array.ndim == len(session.input_shape) - 1:
                array = array[None]
            for start in range(0, len(array), size):
                rows = array[start : start + size]
                yield ImageBatch(rows, [f"{path}[{start + i}]" for i in range(len(rows))], [])


# --- helpers -------------------------------------------------------------------------------


def _meta(model) -> dict[str, str]:
    from anan_onnx.metadata import read_metadata

    return read_metadata(model)


def _version() -> str:
    from anan_onnx._version import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
