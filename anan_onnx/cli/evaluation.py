"""The ``tune`` and ``evaluate`` subcommands of ``anan-onnx``.

Importing this module is cheap: the search, the statistics and the plotting (SciPy,
scikit-learn, matplotlib, tqdm) are imported when a command runs.

Examples::

    anan-onnx tune models/catsdogs_cnn.keras ../shared/data/cats_dogs -o out/tune \
        --emit out/cd.anan.onnx
    anan-onnx tune base.onnx data/ --k 4,5 --mu 2 --a 1.05:1.5:0.15 --rules multiplicative,additive
    anan-onnx evaluate out/fire_folds ../shared/data/fire --rules multiplicative,additive \
        -o out/eval
    anan-onnx evaluate models/catsdogs_cnn.keras --params out/tune/best.json --json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from anan_onnx import json_clean
from anan_onnx.cli.arg_types import add_options, count, options_from
from anan_onnx.cli.preprocess_options import (
    add_preprocess_options,
    given_preprocess_options,
    preprocess_request,
)
from anan_onnx.distributed.cli import add_engine_options, make_engine
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.metric_names import DEFAULT_METRIC, METRICS
from anan_onnx.limits import GRID_CONFIGS
from anan_onnx.options import TUNE_ON, ConvertOptions, RunOptions, SplitOptions
from anan_onnx.params import PARAMS

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Registers ``tune`` and ``evaluate`` on the CLI's subparsers."""
    _add_tune(commands)
    _add_evaluate(commands)


# --- shared options --------------------------------------------------------------------------


def _add_grid(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "grid (default: the paper's 240 configurations)",
        "Each axis takes a comma list and/or ranges start:stop[:step], e.g. --a 1.05:1.5:0.15.",
    )
    for q in PARAMS:  # one axis per ANAN parameter: --k ..., --rules ...
        among = f"; any of {', '.join(q.choices)}" if q.is_option else ""
        g.add_argument(
            f"--{q.axis}", metavar="LIST", help=f"{q.help}{among} (default {q.grid_help})"
        )
    g.add_argument(
        "--max-configs",
        type=count(1),
        metavar="N",
        help=f"most configurations the grid may have (default {GRID_CONFIGS.default:,}; "
        f"or set {GRID_CONFIGS.env})",
    )
    g.add_argument(
        "--metric",
        choices=METRICS,
        default=DEFAULT_METRIC,
        help=f"selection metric (default {DEFAULT_METRIC}; loss is minimised)",
    )
    g.add_argument(
        "--tune-on",
        choices=TUNE_ON,
        default=TUNE_ON[0],
        help=f"split to tune on (default {TUNE_ON[0]}; test inflates the results and warns)",
    )


def _add_data(p: argparse.ArgumentParser) -> None:
    add_options(p.add_argument_group("data set split (as anan_onnx.load_splits)"), SplitOptions)


def _add_run(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    add_options(g, ConvertOptions, only=("layer",))
    add_options(g, RunOptions)
    add_engine_options(g)
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


#: Grids larger than this are announced before the run (the paper's has 240).
_LONG_GRID = 1000


def _grid(args: argparse.Namespace):
    from anan_onnx.evaluation.grid import Grid

    grid = Grid.from_strings(args.max_configs, **{q.axis: getattr(args, q.axis) for q in PARAMS})
    if grid.size > _LONG_GRID:  # minutes to hours: say so before starting
        print(
            f"anan-onnx: the grid has {grid.size:,} configurations (the paper's has 240); "
            "each is one pass over the images: narrow the axes for a shorter run",
            file=sys.stderr,
        )
    return grid


def _split_and_run(args: argparse.Namespace) -> dict[str, Any]:
    """The options of _add_data and _add_run, as tune() and evaluate() take them."""
    return {
        "split": options_from(args, SplitOptions),
        "run": options_from(args, RunOptions),
        "layer": args.layer,
    }


# --- tune ----------------------------------------------------------------------------------


def _add_tune(commands: Any) -> None:
    p = commands.add_parser(
        "tune",
        help="grid-search k, mu, a, b on a validation split",
        description="Grid-search the ANAN parameters of a base CNN on labelled images, as in "
        "the paper (Section 3.3.3): every configuration is scored on the validation split, the "
        "best by --metric wins. Writes every configuration's scores (grid.csv) and the best "
        "(best.json, with the split used) to --out, and with --emit the tuned ANAN model.",
        epilog="Example: anan-onnx tune models/catsdogs_cnn.keras ../shared/data/cats_dogs "
        "-o out/tune --emit out/catsdogs.anan.onnx",
    )
    p.add_argument("model", type=Path, help="base CNN: .keras, .h5 or .onnx (not an ANAN model)")
    p.add_argument("data", type=Path, help="image folder (class folders, or train/ test/) or .npz")
    _add_grid(p)
    _add_data(p)
    g = p.add_argument_group("output")
    g.add_argument(
        "-o",
        "--out",
        type=Path,
        help="folder for grid.csv and best.json (default out/tune/MODEL)",
    )
    g.add_argument(
        "--emit",
        type=Path,
        help="also write the tuned ANAN model (.anan.onnx), if it beats the base CNN",
    )
    g.add_argument(
        "--emit-anyway",
        action="store_true",
        help="write --emit even when no configuration beats the base CNN",
    )
    g.add_argument(
        "--json",
        action="store_true",
        help="print best.json on stdout (with --layers: the per-layer table)",
    )
    add_options(g, ConvertOptions, only=("layers",))  # the layer search: layers.csv/.md
    add_preprocess_options(p)  # convert's: one set of options, one meaning
    _add_run(p)
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:
    from anan_onnx.evaluation.tune import tune

    grid = _grid(args)
    out = args.out or Path("out") / "tune" / _stem(args.model)
    if args.layers is not None:
        return _cmd_layer_search(args, grid, out)
    result = tune(
        args.model,
        args.data,
        grid=grid,
        metric=args.metric,
        tune_on=args.tune_on,
        preprocess=preprocess_request(args),
        **_split_and_run(args),
        emit=args.emit,
        emit_anyway=args.emit_anyway,
        engine=make_engine(args),
    )
    grid_csv, best_json = result.write(out)
    # --emit asked for a model that was not written (it would not beat the base): exit 1
    status = 1 if args.emit and result.emitted is None else 0
    if args.json:
        print(json_clean.dumps(result.to_json()))
        return status
    notes = {"wrote": f"{grid_csv}, {best_json}"}
    if args.emit:
        notes["ANAN model"] = (
            str(result.emitted)
            if result.emitted is not None
            else "not written: no configuration beats the base CNN (--emit-anyway writes it)"
        )
    print(result.summary(notes))
    return status


def _cmd_layer_search(args: argparse.Namespace, grid: Any, out: Path) -> int:
    """``tune --layers``: the grid per layer (:mod:`anan_onnx.evaluation.layer_search`)."""
    from anan_onnx.evaluation.layer_search import layer_search

    given = [
        flag
        for flag, value in (
            ("--layer", args.layer), ("--emit", args.emit), ("--emit-anyway", args.emit_anyway),
            ("--tune-on test", args.tune_on != "val"),
        )
        if value
    ]  # fmt: skip
    if given:
        raise AnanError(
            f"tune --layers takes no {given[0]}: search the layers on the validation split, "
            "then tune or convert the chosen layer"
        )
    options = _split_and_run(args)
    result = layer_search(
        args.model,
        args.data,
        layers=args.layers,
        grid=grid,
        metric=args.metric,
        split=options["split"],
        run=options["run"],
        engine=make_engine(args),
        preprocess=preprocess_request(args),
    )
    written = ", ".join(str(p) for p in result.write(out))
    if args.json:
        print(json_clean.dumps(result.to_json()))
        return 0
    print(result.markdown())
    print(f"searched {len(result.rows)} layers in {result.seconds:.1f} s; wrote {written}")
    return 0


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(path.suffix)] if path.suffix else name


# --- evaluate ------------------------------------------------------------------------------


def _add_evaluate(commands: Any) -> None:
    p = commands.add_parser(
        "evaluate",
        help="base CNN vs ANAN vs threshold-tuned control on a test set",
        description="Score the base CNN, the control (the base CNN with only its decision "
        "threshold tuned on the validation images) and ANAN (parameters tuned per model on the "
        "same validation images, or --params) on the test images: loss, accuracy, F1, balanced "
        "accuracy, MCC, ROC-AUC and positive rate. Over a folder of fold models, paired "
        "Wilcoxon signed-rank tests per metric (as the paper's Table 3). With training.json "
        "next to the fold models, each fold is tuned on its own validation fold.",
        epilog="Example: anan-onnx evaluate out/fire_folds ../shared/data/fire "
        "--rules multiplicative,additive -o out/fire_eval",
    )
    p.add_argument(
        "models",
        type=Path,
        help="a base model file, a folder of fold models, or a compressed ANAN model "
        "(scored next to its FP32 model)",
    )
    p.add_argument(
        "data",
        type=Path,
        nargs="?",
        help="image folder or .npz (default: the data_root in training.json)",
    )
    p.add_argument(
        "--params",
        type=Path,
        action="append",
        default=[],
        help="use these parameters (best.json of tune) instead of tuning; repeatable",
    )
    _add_grid(p)
    _add_data(p)
    g = p.add_argument_group("output")
    g.add_argument(
        "-o",
        "--out",
        type=Path,
        help="folder for evaluation.json, evaluation.md and evaluation.png",
    )
    g.add_argument("--report", type=Path, help="write the Markdown report here")
    g.add_argument("--figure", type=Path, help="write the PNG figure here")
    g.add_argument("--title", help="report and figure title")
    g.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    add_options(g, ConvertOptions, only=("layers",))  # one variant per layer, Holm-corrected
    p.add_argument(
        "--fp32",
        type=Path,
        help="compressed model: its FP32 .anan.onnx (default: recorded next to it)",
    )
    add_preprocess_options(p)
    _add_run(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from anan_onnx.evaluation.compressed import is_compressed
    from anan_onnx.evaluation.evaluate import evaluate
    from anan_onnx.model_io import write_all_atomic

    if is_compressed(args.models):
        return _evaluate_compressed(args)

    evaluation = evaluate(
        args.models,
        args.data,
        params=args.params,
        grid=_grid(args),
        metric=args.metric,
        tune_on=args.tune_on,
        layers=args.layers,
        **_split_and_run(args),
        # per-model lines are the command's output; with --json, stdout is JSON only
        log=lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True),
        engine=make_engine(args),
        preprocess=preprocess_request(args),
    )
    report, figure = args.report, args.figure
    files: list[tuple[bytes, Path]] = []
    if args.out:
        files.append((json_clean.to_bytes(evaluation.to_json()), args.out / "evaluation.json"))
        report = report or args.out / "evaluation.md"
        figure = figure or args.out / "evaluation.png"
    if figure:
        files.append((evaluation.figure_png(title=args.title), figure))
    text = evaluation.markdown(title=args.title, figure=_relative(figure, report))
    if report:
        files.append((text.encode(), report))
    write_all_atomic(files)  # the report never links a figure that was not written
    if args.json:
        print(json_clean.dumps(evaluation.to_json()))
    else:
        print(text, end="")
    return 0


def _evaluate_compressed(args: argparse.Namespace) -> int:
    """A compressed model: its test scores next to its FP32 model's."""
    from anan_onnx.evaluation.compressed import evaluate_compressed, markdown
    from anan_onnx.model_io import write_all_atomic

    if args.data is None:
        raise AnanError("a compressed model needs DATA: pass the labelled image folder")
    given = (["--layers"] if args.layers is not None else []) + given_preprocess_options(args)
    if given:
        raise AnanError(
            f"evaluate of a compressed model takes no {given[0]}: it scores the model as "
            "compressed, with its recorded preprocessing; drop the option"
        )
    split, run = options_from(args, SplitOptions), options_from(args, RunOptions)
    result = evaluate_compressed(args.models, args.data, args.fp32, split, run)
    text = markdown(result)
    files: list[tuple[bytes, Path]] = []
    if args.out:
        files.append((json_clean.to_bytes(result), args.out / "evaluation.json"))
    if args.report or args.out:
        files.append((text.encode(), args.report or args.out / "evaluation.md"))
    write_all_atomic(files)
    print(json_clean.dumps(result) if args.json else text, end="" if not args.json else "\n")
    return 0


def _relative(figure: Path | None, report: Path | None) -> str | None:
    """The figure's path as the report links it (relative when in the same folder)."""
    if figure is None:
        return None
    if report is not None and figure.parent.resolve() == report.parent.resolve():
        return figure.name
    return str(figure)
