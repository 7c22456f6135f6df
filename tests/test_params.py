"""One source for the parameters: every field of AnanParams reaches every place that lists
the parameters (CLI, metadata, tune grid, tunable graph inputs, params files).

Nothing here names a parameter: the tests iterate ``dataclasses.fields(AnanParams)``, so a
new field that one of those places misses fails them.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from onnx import numpy_helper

from anan_onnx.cli import main
from anan_onnx.cli.app import _build_parser, _params
from anan_onnx.cli.evaluation import _grid
from anan_onnx.convert.pipeline import convert_model
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.fastgrid import GridPoint
from anan_onnx.evaluation.grid import Grid
from anan_onnx.evaluation.model_files import read_params
from anan_onnx.metadata import PARAM_KEYS, read_metadata
from anan_onnx.params import PARAMS, AnanParams, Param
from anan_onnx.rewrite.graph import PARAM_INPUTS
from anan_onnx.testing import build_cnn

FIELDS = dataclasses.fields(AnanParams)


def other_value(p: Param) -> object:
    """A valid value different from the default."""
    if p.is_option:
        return next(c for c in p.choices if c != p.default)
    return p.default + 1 if p.kind is int else p.default + 0.5


#: every field set away from its default (mu stays <= k, as a model needs)
OTHER = AnanParams(**{p.name: other_value(p) for p in PARAMS})


def test_params_are_the_fields_in_order():
    assert [p.name for p in PARAMS] == [f.name for f in FIELDS]
    assert [p.default for p in PARAMS] == [f.default for f in FIELDS]
    for f in FIELDS:
        assert getattr(OTHER, f.name) != f.default, f.name


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_every_field_is_validated(field):
    p = next(q for q in PARAMS if q.name == field.name)
    bad = "nonsense" if not p.is_option else 3
    with pytest.raises(AnanError, match=f"^{field.name} must be"):
        AnanParams(**{field.name: bad})


def test_convert_cli_has_every_field(capsys):
    argv = ["convert", "model.onnx"]
    for f in FIELDS:
        argv += [f"--{f.name}", str(getattr(OTHER, f.name))]
    assert _params(_build_parser().parse_args(argv)) == OTHER
    defaults = _build_parser().parse_args(["convert", "model.onnx"])
    assert _params(defaults) == AnanParams()
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for p in PARAMS:
        assert f"--{p.name}" in text
        assert f"{p.help} (default {p.default_text})" in text


@pytest.mark.parametrize("command", ["tune", "evaluate"])
def test_tune_and_evaluate_cli_have_every_axis(command, capsys):
    argv = [command, "model.onnx", "data"]
    for p in PARAMS:
        argv += [f"--{p.axis}", str(getattr(OTHER, p.name))]
    grid = _grid(_build_parser().parse_args(argv))
    for p in PARAMS:
        assert getattr(grid, p.axis) == (getattr(OTHER, p.name),), p.axis
    assert _grid(_build_parser().parse_args([command, "model.onnx", "data"])) == Grid()
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for p in PARAMS:
        assert f"--{p.axis} LIST {p.help}" in text


def test_grid_has_an_axis_per_field_with_its_default_and_checks():
    assert sorted(Grid.axes()) == sorted(p.axis for p in PARAMS)
    for p in PARAMS:
        assert getattr(Grid(), p.axis) == p.grid
        assert p.default in p.grid or not p.is_option
        bad = "nonsense" if p.is_option else 0 if p.kind is int else float("nan")
        with pytest.raises(AnanError, match=p.axis if p.is_option else f"^{p.name} must be"):
            Grid(**{p.axis: (bad,)})
    numbers = [p.name for p in PARAMS if not p.is_option]
    assert [f.name for f in dataclasses.fields(GridPoint)] == numbers
    point = GridPoint(**{name: getattr(OTHER, name) for name in numbers})
    assert point.params(OTHER) == OTHER
    options = {p.name: getattr(OTHER, p.name) for p in Grid.options()}
    grid = Grid(**{p.axis: (getattr(OTHER, p.name),) for p in PARAMS})
    assert grid.option_sets() == [AnanParams(**options)]
    assert grid.points(OTHER.rule) == [point]


def test_metadata_records_every_field():
    assert tuple(p.metadata_key for p in PARAMS) == PARAM_KEYS
    meta = read_metadata(convert_model(build_cnn(), OTHER).anan)
    for p in PARAMS:
        assert meta[p.metadata_key] == str(getattr(OTHER, p.name))
    assert AnanParams.from_strings(meta) == OTHER


def test_every_number_is_a_tunable_graph_input():
    numbers = [p for p in PARAMS if not p.is_option]
    assert all(p.graph_input for p in numbers)
    assert tuple(p.graph_input for p in numbers) == PARAM_INPUTS
    anan = convert_model(build_cnn(), OTHER, tunable=True).anan
    inits = {i.name: numpy_helper.to_array(i) for i in anan.graph.initializer}
    inputs = {i.name for i in anan.graph.input}
    for p in numbers:
        assert p.graph_input in inputs
        assert inits[p.graph_input] == np.float32(getattr(OTHER, p.name)), p.name


def test_params_files_carry_every_field(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"params": OTHER.as_dict()}))
    assert read_params(path) == OTHER
    required = [p.name for p in PARAMS if p.required]
    partial = {p.name: getattr(OTHER, p.name) for p in PARAMS if p.name != required[0]}
    path.write_text(json.dumps(partial))
    with pytest.raises(AnanError, match=f"has no {', '.join(required)}"):
        read_params(path)
