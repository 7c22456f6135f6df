"""The map-reduce path of the engines, in this process: a grid spread over shards and
scored per configuration group gives the local engine's rows and interval exactly."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import onnx
import pytest
from fixtures.evaluation_data import QUIET, SMALL_GRID, planted

from anan_onnx.evaluation.datasets import load_splits
from anan_onnx.evaluation.engine import LocalEngine
from anan_onnx.evaluation.tune import grid_search
from anan_onnx.options import RunOptions
from anan_onnx.runtime.inputs import InputSpec

# two grid searches and the planted data set: ~15 s of CPU, so not in the fast tier
pytestmark = pytest.mark.integration


class SpreadHere(LocalEngine):
    """Shards of one chunk and three configuration groups, as a cluster would cut them,
    computed here; counts what the map-reduce was asked."""

    name = "spread-here"
    workers = 3

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []  # (shards, groups) per map-reduce

    def shards(self, n_images: int, unit: int) -> list[tuple[int, int]]:
        return [(a, min(n_images, a + unit)) for a in range(0, n_images, unit)]

    def map_reduce(self, fn, shared, items, reduce, reduce_shared, n_groups):
        self.calls.append((len(items), n_groups))
        return super().map_reduce(fn, shared, items, reduce, reduce_shared, n_groups)


def test_a_spread_grid_gives_the_local_rows_and_interval(tmp_path):
    model, data, _, labels = planted(tmp_path)
    base = onnx.load(model)
    images = load_splits(data, InputSpec("NCHW", 11, 11, 3), lazy=True).val.images
    run = RunOptions(batch_size=8, progress=QUIET.progress)
    local = grid_search(base, images, labels, SMALL_GRID, run=run, interval=True)
    engine = SpreadHere()
    spread = grid_search(base, images, labels, SMALL_GRID, run=run, interval=True, engine=engine)
    assert engine.calls == [(len(labels) // 8, 3)]  # 6 shards, 16 configurations in 3 groups
    assert spread.rows == local.rows and spread.rest_rows == local.rest_rows
    # the interval needs the best configuration's per-image outputs: fetched from its group
    assert local.interval is not None and spread.interval == local.interval
    assert spread.best is spread.rows[local.rows.index(local.best)]


class Pinning(SpreadHere):
    """Records, at each map-reduce, which earlier ones' outputs are still held."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[weakref.ref] = []
        self.alive: list[int] = []  # earlier map-reduces whose outputs live, per call

    def map_reduce(self, fn, shared, items, reduce, reduce_shared, n_groups):
        gc.collect()
        self.alive.append(sum(ref() is not None for ref in self.outputs))
        smalls, reduced, fetch = super().map_reduce(
            fn, shared, items, reduce, reduce_shared, n_groups
        )
        self.outputs.append(weakref.ref(fetch))  # fetch holds every part of the grid
        return smalls, reduced, fetch


def test_an_option_sets_outputs_are_let_go_before_the_next_one(tmp_path):
    model, data, _, labels = planted(tmp_path)
    images = load_splits(data, InputSpec("NCHW", 11, 11, 3), lazy=True).val.images
    grid = dataclasses.replace(SMALL_GRID, rules=("multiplicative", "additive"))
    engine = Pinning()
    run = RunOptions(batch_size=8, progress=QUIET.progress)
    grid_search(onnx.load(model), images, labels, grid, run=run, engine=engine)
    assert engine.alive == [0, 0]  # two option sets; none pinned while the next one runs
