"""Tests of anan_onnx.evaluation.grid: parsing the axes, sizes and option sets."""

from __future__ import annotations

import pytest

from anan_onnx import AnanError
from anan_onnx.evaluation.grid import PAPER_GRID, Grid, parse_values


def test_parse_values_ranges_and_lists():
    assert parse_values("a", "1.05:1.5:0.15") == (1.05, 1.2, 1.35, 1.5)
    assert parse_values("b", "0.05:0.5:0.15") == (0.05, 0.2, 0.35, 0.5)
    assert parse_values("k", "4:8", integer=True) == (4, 5, 6, 7, 8)
    assert parse_values("mu", "2, 4,2", integer=True) == (2, 4)  # duplicates dropped
    assert parse_values("a", "1.0:1.25:0.1") == (1.0, 1.1, 1.2)  # stop off the grid


@pytest.mark.parametrize(
    "name, text, integer, message",
    [
        ("k", "0", True, "k must be a positive integer, got 0"),
        ("k", "2.5", True, "k must be a positive integer"),
        ("a", "x", False, "'x' is not a number or a range"),
        ("a", "1.5:1.0", False, "needs start <= stop"),
        ("a", "1:2:0", False, "positive step"),
        ("b", "", False, "--b is empty"),
        ("a", "nan", False, "not a finite number"),
    ],
)
def test_parse_values_errors(name, text, integer, message):
    with pytest.raises(AnanError, match=message):
        parse_values(name, text, integer=integer)


def test_grid_sizes_and_options():
    assert PAPER_GRID.size == 240 == len(PAPER_GRID.points())
    both = Grid.from_strings(rules="multiplicative,additive", idle="0,1")
    # idle only matters to the additive rule: 240 + 480
    assert both.size == 720
    assert {o.rule for o in both.option_sets()} == {"multiplicative", "additive"}
    with pytest.raises(AnanError, match="--rules: 'sideways' is not one of"):
        Grid.from_strings(rules="sideways")
    with pytest.raises(AnanError, match="b must be >= 0"):
        Grid(b=(-0.1,))
