"""How a spread grid cuts its configurations into reduce groups: about one per worker, but
each group's part of a shard large enough that Ray keeps it in the object store (parts of
up to 100 KiB are returned inline to the driver). Pure arithmetic: fast tier."""

from __future__ import annotations

import math

import onnx
import pytest

from anan_onnx.distributed.ray_engine import RayEngine
from anan_onnx.evaluation.engine import _groups, _output_bytes
from anan_onnx.onnx_build import float_value_info

INLINE_LIMIT = 100 * 1024  # Ray's max_direct_call_object_size


@pytest.mark.parametrize(
    ("configs", "images", "classes", "workers"),
    [
        (64, 64, 10, 32),  # a big cluster, small shards: one group, not 32 tiny ones
        (256, 500, 10, 16),  # large shards: every worker gets a group
        (81, 200, 4, 8),
        (10, 4096, 10, 3),  # groups of unequal size: the smallest one is large enough
        (3, 5872, 4, 8),  # a configuration's part is 72 % of the floor: one group, not two
        (16, 8, 3, 3),  # a tiny run: one group
    ],
)
def test_each_group_part_stays_off_the_driver(configs, images, classes, workers):
    config_bytes = images * classes * 4
    groups = _groups(configs, workers, config_bytes, RayEngine.min_part_bytes)
    assert [a for a, _ in groups] == [0] + [b for _, b in groups[:-1]]  # contiguous
    assert groups[-1][1] == configs and 1 <= len(groups) <= workers
    if len(groups) > 1:
        assert min(b - a for a, b in groups) * config_bytes > INLINE_LIMIT
    # as many groups as workers where each can get a large enough part
    per_group = math.ceil(RayEngine.min_part_bytes / config_bytes)
    assert len(groups) == max(1, min(workers, configs // per_group))


def test_without_a_size_floor_there_is_a_group_per_worker():
    assert _groups(16, 3, 4, 0) == [(0, 5), (5, 10), (10, 16)]


def test_output_bytes_counts_the_first_outputs_float32_values_per_image():
    model = onnx.ModelProto()
    model.graph.output.append(float_value_info("y", ["N", 10, 2]))
    assert _output_bytes(model) == 80
