"""The options as data (anan_onnx/options.py): validation, the CLI generated from them, and
one default per fact."""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from anan_onnx import AnanError, AnanParams, convert_model
from anan_onnx.choices import Layout, Reduce, Rule, Scaling
from anan_onnx.cli import main
from anan_onnx.cli.app import _build_parser
from anan_onnx.evaluation.datasets import load_splits
from anan_onnx.evaluation.fastgrid import FastGrid
from anan_onnx.evaluation.tune import grid_search
from anan_onnx.options import (
    BATCH_ROWS,
    DEFAULT_OPSET,
    ConvertOptions,
    RunOptions,
    SplitOptions,
    options_of,
)
from anan_onnx.params import K_MAX, PARAMS
from anan_onnx.runtime.batched import predict_batched
from anan_onnx.testing import build_cnn

BAD = [
    (SplitOptions, "val_fraction", 1.0, "val_fraction must be a number in [0, 1)"),
    (SplitOptions, "val_fraction", -0.1, "val_fraction must be a number in [0, 1)"),
    (SplitOptions, "test_fraction", "0.2", "test_fraction must be a number in [0, 1)"),
    (SplitOptions, "test_fraction", True, "test_fraction must be a number in [0, 1)"),
    (SplitOptions, "seed", -1, "seed must be a non-negative integer"),
    (SplitOptions, "seed", 1.5, "seed must be a non-negative integer"),
    (SplitOptions, "max_per_class", 0, "max_per_class must be a positive integer"),
    (SplitOptions, "max_per_class", 2.5, "max_per_class must be a positive integer"),
    (SplitOptions, "positive", [], "positive must be a non-empty list"),
    (SplitOptions, "positive", "cats", "positive must be a non-empty list"),
    (SplitOptions, "positive", [1.5], "neither a class name nor an index"),
    (RunOptions, "threads", 0, "threads must be a positive integer"),
    (RunOptions, "threads", 10**7, "more than the limit"),
    (RunOptions, "batch_size", 2.5, "batch_size must be a positive integer"),
    (RunOptions, "batch_size", 0, "batch_size must be a positive integer"),
    (RunOptions, "progress", "yes", "progress must be True or False"),
    (ConvertOptions, "opset", 12, "opset 12 is not supported"),
    (ConvertOptions, "opset", 19, "opset 19 is not supported"),
    (ConvertOptions, "k_max", 0, "k_max must be a positive integer"),
    (ConvertOptions, "k_max", K_MAX + 1, "too large"),
    (ConvertOptions, "batch", -2, "batch must be a positive integer"),
    (ConvertOptions, "scaling", "fast", "scaling must be one of blocked, broadcast"),
    (ConvertOptions, "layer", "", "layer must be a non-empty name"),
    (ConvertOptions, "simplify", 1, "simplify must be True or False"),
]


@pytest.mark.parametrize(("cls", "name", "value", "message"), BAD)
def test_a_bad_value_is_one_line(cls: type, name: str, value: object, message: str) -> None:
    with pytest.raises(AnanError, match=re.escape(message)) as e:
        cls(**{name: value})
    assert "\n" not in str(e.value)


def test_values_are_converted() -> None:
    assert RunOptions(batch_size=np.int64(4)).batch_size == 4
    assert type(RunOptions(batch_size=4.0).batch_size) is int
    assert SplitOptions(positive=["cats", np.int64(1)]).positive == ("cats", 1)
    assert SplitOptions(val_fraction=0).val_fraction == 0.0
    assert ConvertOptions(opset=np.int64(DEFAULT_OPSET)).opset == DEFAULT_OPSET


def test_the_old_entry_points_check_the_same_way() -> None:
    """load_splits and FastGrid refuse what the options refuse (one check)."""
    with pytest.raises(AnanError, match=r"val_fraction must be a number in \[0, 1\)"):
        load_splits("nowhere", None, val_fraction=2)  # type: ignore[arg-type]
    with pytest.raises(AnanError, match="batch_size must be a positive integer"):
        FastGrid(build_cnn(), batch_size=0)


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


GENERATED = [
    ("convert", ConvertOptions, None),
    ("tune", SplitOptions, None),
    ("tune", RunOptions, None),
    ("tune", ConvertOptions, {"layer"}),
    ("evaluate", SplitOptions, None),
    ("evaluate", RunOptions, None),
    ("evaluate", ConvertOptions, {"layer"}),
]


@pytest.mark.parametrize(("command", "cls", "only"), GENERATED)
def test_every_field_has_its_flag(command: str, cls: type, only: set[str] | None) -> None:
    """Each field is a flag of the command, with the field's default and help."""
    actions = {s: a for a in _subparser(command)._actions for s in a.option_strings}
    for opt in options_of(cls):
        if only is not None and opt.name not in only:
            continue
        action = actions[opt.cli_flag]
        assert action.dest == opt.name
        assert action.default == opt.default, opt.name
        assert action.help == opt.help_text
        assert opt.help in action.help
        if opt.default not in (None, False, True):
            assert f"(default {opt.default})" in action.help
        if opt.choices:
            assert tuple(action.choices) == opt.choices


def test_cli_values_reach_the_options(tmp_path: Path, capsys) -> None:
    """A bad value on the command line is the options' own one-line refusal, exit 2."""
    missing = str(tmp_path / "none.onnx")
    assert main(["tune", missing, str(tmp_path), "--val-fraction", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anan-onnx: error: val_fraction must be a number in [0, 1)")
    assert "\n" not in err
    assert main(["evaluate", missing, str(tmp_path), "--threads", "0"]) == 2
    assert "threads must be a positive integer" in capsys.readouterr().err
    assert main(["convert", missing, "--batch", "0"]) == 2
    assert "batch must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["tune", missing, str(tmp_path), "--positive", ","])
    assert e.value.code == 2
    assert "--positive is empty" in capsys.readouterr().err


def test_parsed_arguments_make_the_options() -> None:
    from anan_onnx.cli.arg_types import options_from

    args = _subparser("tune").parse_args(
        ["m.onnx", "d", "--positive", "cats,1", "--seed", "3", "--no-progress",
         "--batch-size", "8", "--max-per-class", "5"]
    )  # fmt: skip
    assert options_from(args, SplitOptions) == SplitOptions(
        seed=3, positive=("cats", 1), max_per_class=5
    )
    assert options_from(args, RunOptions) == RunOptions(batch_size=8, progress=False)
    args = _subparser("convert").parse_args(["m.onnx", "--scaling", "broadcast", "--fold-steps"])
    assert options_from(args, ConvertOptions) == ConvertOptions(
        scaling=Scaling.BROADCAST, fold_steps=True
    )
    # a three-way switch: None (fold where exact) unless --fold-steps or --no-fold-steps
    for argv, fold in (([], None), (["--no-fold-steps"], False), (["--fold-steps"], True)):
        args = _subparser("convert").parse_args(["m.onnx", *argv])
        assert options_from(args, ConvertOptions).fold_steps is fold


def test_convert_model_takes_the_options_or_their_fields() -> None:
    base, params = build_cnn(), AnanParams(k=3, mu=1, a=1.2, b=0.2)
    by_object = convert_model(base, params, ConvertOptions(batch=2, scaling=Scaling.BROADCAST))
    by_field = convert_model(base, params, batch=2, scaling=Scaling.BROADCAST)
    assert by_object.anan.SerializeToString() == by_field.anan.SerializeToString()
    default = convert_model(base, params)
    assert default.anan.SerializeToString() != by_field.anan.SerializeToString()
    with pytest.raises(AnanError, match="scaling must be one of blocked, broadcast"):
        convert_model(base, params, scaling="fast")


def test_one_default_per_fact() -> None:
    """The functions below the options read their defaults from them."""
    split, run = SplitOptions(), RunOptions()
    loader = inspect.signature(load_splits).parameters
    for name in ("val_fraction", "test_fraction", "seed", "positive", "max_per_class"):
        assert loader[name].default == getattr(split, name)
    assert inspect.signature(FastGrid).parameters["batch_size"].default == BATCH_ROWS
    assert inspect.signature(predict_batched).parameters["batch_size"].default == BATCH_ROWS
    assert run.batch_size == BATCH_ROWS
    assert inspect.signature(grid_search).parameters["run"].default is None


def test_choices_are_the_parameters_choices() -> None:
    """The spec's options list the values of anan_onnx.choices, defaults first."""
    by_name = {q.name: q for q in PARAMS}
    assert by_name["rule"].choices == Rule.ALL and by_name["rule"].default == Rule.ALL[0]
    assert by_name["reduce"].choices == Reduce.ALL
    assert Layout.ALL == ("NHWC", "NCHW")


def test_named_choices_write_the_same_bytes_as_strings() -> None:
    """A model made with the named choices is byte-identical to one made with the plain
    strings, and its metadata holds the plain strings (not ``Rule.ADDITIVE``)."""
    from anan_onnx.choices import Counter, Signal
    from anan_onnx.metadata import read_metadata

    base = build_cnn()
    named = convert_model(
        base,
        AnanParams(rule=Rule.ADDITIVE, counter=Counter.CLAMP, signal=Signal.POST,
                   reduce=Reduce.MAX),
        scaling=Scaling.BROADCAST,
    )  # fmt: skip
    plain = convert_model(
        base,
        AnanParams(rule="additive", counter="clamp", signal="post", reduce="max"),
        scaling="broadcast",
    )
    assert named.anan.SerializeToString() == plain.anan.SerializeToString()
    meta = read_metadata(named.anan)
    assert (meta["rule"], meta["counter"], meta["signal"], meta["reduce"], meta["scaling"]) == (
        "additive", "clamp", "post", "max", "broadcast"
    )  # fmt: skip


@pytest.mark.parametrize("value", ["first:²", "first:x", "first:0", "first:", " , "])
def test_check_layers_refuses_what_is_no_selection(value):
    """first:N takes ASCII digits only (int() would refuse '²' with a ValueError)."""
    from anan_onnx.options import check_layers

    with pytest.raises(AnanError, match="--layers"):
        check_layers("--layers", value)
