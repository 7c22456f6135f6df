"""The Ray engine: tune and evaluate on a local Ray cluster give the local engine's outputs,
byte for byte; a worker killed mid-run is retried and the output is complete and the same.
(predict --engine ray: tests/distributed/.) Ray's deprecation warnings are errors here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures.evaluation_data import SMALL_GRID, make_data, make_folds, planted, run_cli

from anan_onnx.distributed.ray_engine import RayEngine
from anan_onnx.evaluation.tune import grid_search
from anan_onnx.options import RunOptions
from anan_onnx.runtime.inputs import InputSpec

pytestmark = pytest.mark.filterwarnings("error::ray.util.annotations.RayDeprecationWarning")

GRID_ARGS = ["--k", "2,3", "--mu", "1,2", "--a", "1.5,4", "--b", "0.3,0.9"]


def _without_seconds(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("seconds", None)  # wall time: the one field that differs run to run
    return data


def test_tune_on_ray_writes_the_local_bytes(tmp_path, capsys, ray_cluster):
    model, data, best, _ = planted(tmp_path)
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        # --batch-size 8: 48 images in several shards, so the Ray run really is spread
        code, stdout, _ = run_cli(capsys, "tune", model, data, *GRID_ARGS, "--batch-size", "8",
                                  "--no-progress", "--engine", engine, "-o", out)  # fmt: skip
        assert code == 0, stdout
        outs[engine] = out
    assert (outs["ray"] / "grid.csv").read_bytes() == (outs["local"] / "grid.csv").read_bytes()
    ray_best = _without_seconds(outs["ray"] / "best.json")
    assert ray_best == _without_seconds(outs["local"] / "best.json")
    params = ray_best["params"]
    assert [params[n] for n in ("k", "mu", "a", "b")] == [best.k, best.mu, best.a, best.b]


def test_workers_killed_mid_tune_are_retried_and_the_driver_gets_scores_only(tmp_path, ray_cluster):
    model, data, _, labels = planted(tmp_path)
    from anan_onnx.evaluation.datasets import load_splits
    from anan_onnx.metadata import read_metadata

    base = onnx.load(model)
    spec = InputSpec("NCHW", 11, 11, 3)
    assert not read_metadata(base)  # the planted model records nothing: spec given here
    images = load_splits(data, spec, lazy=True).val.images
    shard_kill, reduce_kill = tmp_path / "shard.txt", tmp_path / "reduce.txt"
    received: list[int] = []  # the largest array in each answer the driver got

    def die_once(marker: Path) -> None:  # nested: Ray ships it by value, as a crash would
        if not marker.exists():
            marker.write_text(f"killed process {os.getpid()}\n")
            os._exit(1)  # no cleanup: the task is lost

    class Dying(RayEngine):
        """Kills the worker of shard 1 and of the first reduce task once (defined here: Ray
        ships it by value), and records what the driver receives."""

        def map_reduce(self, fn, shared, items, reduce, reduce_shared, n_groups):
            def shard(shared, numbered):
                if numbered[0] == 1:
                    die_once(shard_kill)
                return fn(shared, numbered[1])

            def group(shared, parts):
                die_once(reduce_kill)
                return reduce(shared, parts)

            numbered = list(enumerate(items))
            return super().map_reduce(shard, shared, numbered, group, reduce_shared, n_groups)

        def _get(self, refs):
            answers = super()._get(refs)
            received.append(max((np.size(a) for a in answers), default=0))
            return answers

    engine = Dying(workers=2)
    assert len(engine.shards(len(images), 8)) >= 2
    run = RunOptions(batch_size=8, progress=False)
    local = grid_search(base, images, labels, SMALL_GRID, run=run)
    spread = grid_search(base, images, labels, SMALL_GRID, run=run, engine=engine)
    assert shard_kill.is_file() and reduce_kill.is_file()  # workers really died
    assert spread.rows == local.rows and spread.rest_rows == local.rest_rows
    # the base model's outputs (images x 1) at most: never configurations x images
    assert max(received) <= len(labels) < SMALL_GRID.size * len(labels)


def test_the_driver_holds_no_group_part_where_parts_would_be_small(ray_cluster):
    """A grid of 64 configurations x 64 images x 10 float32 classes per shard, on a cluster
    of 32 workers: a group per worker would make 5 KiB parts, which Ray returns inline to
    the driver (and the driver ships on to the reduce tasks). The groups are sized so each
    part stays in the object store: the driver's in-process store grows by the scores only."""
    from anan_onnx.evaluation.engine import _groups

    engine = RayEngine()
    config_bytes = 64 * 10 * 4
    groups = _groups(64, 32, config_bytes, engine.min_part_bytes)

    def shard(groups, item):  # nested: Ray ships it by value
        return item, [np.full((b - a) * config_bytes, item, np.uint8) for a, b in groups]

    def total(_, parts):
        return [int(p.sum()) + p.nbytes for p in parts]

    core = ray_cluster._private.worker.global_worker.core_worker
    before = core.get_local_memory_store_bytes_used()
    smalls, sums, _fetch = engine.map_reduce(shard, groups, range(4), total, None, len(groups))
    held = core.get_local_memory_store_bytes_used() - before
    # every shard's part reached its group's reduce, in shard order
    assert smalls == [0, 1, 2, 3]
    assert sums == [[(b - a) * config_bytes * (i + 1) for i in range(4)] for a, b in groups]
    assert held < 8 * 1024  # a 32-group cut would hold 4 shards x 32 parts x 5 KiB here


def test_evaluate_on_ray_gives_the_local_report(tmp_path, capsys, ray_cluster):
    data, x = make_data(tmp_path / "data")
    folds = make_folds(tmp_path / "folds", x, n=2)
    reports = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"eval_{engine}"
        code, stdout, _ = run_cli(capsys, "evaluate", folds, data, *GRID_ARGS, "--rules",
                                  "multiplicative,additive", "--batch-size", "8", "--engine",
                                  engine, "-o", out, "--no-progress")  # fmt: skip
        assert code == 0, stdout
        reports[engine] = out
    md = {e: (o / "evaluation.md").read_text() for e, o in reports.items()}
    assert md["ray"] == md["local"]
    result = {e: json.loads((o / "evaluation.json").read_text()) for e, o in reports.items()}
    for fold in (*result["ray"]["folds"], *result["local"]["folds"]):
        for tuning in fold["tuning"].values():
            tuning.pop("seconds")
    assert result["ray"] == result["local"]
