"""benchmarks/floor_graph.py: the floor stand-in is the base CNN with exactly one extra
per-image, per-kernel Mul, after the first layer's pool."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from anan_onnx.testing import build_base_cnn
from benchmarks.floor_graph import floor_stand_in


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})


def test_the_stand_in_scales_the_pooled_map_by_a_per_image_gain():
    base = build_base_cnn(16, 3, (16, 16), 4, seed=1)
    base.graph.output.append(onnx.helper.make_tensor_value_info("p1", 1, None))
    floor = floor_stand_in(base, gain=2.0)
    added = {n.op_type for n in floor.graph.node} - {n.op_type for n in base.graph.node}
    assert added == {"Slice", "Mul"} and len(floor.graph.node) == len(base.graph.node) + 3
    x = np.random.default_rng(0).random((3, 16, 16, 3), dtype=np.float32)
    base_pooled = _run(base, x)[1]
    scaled = next(n for n in floor.graph.node if n.name == "floor/scaled")
    assert scaled.input[0] == "p1"  # after the MaxPool, not before it
    floor.graph.output.append(onnx.helper.make_tensor_value_info(scaled.output[0], 1, None))
    floor_out = _run(floor, x)
    gain = 2.0 * x[:, 0, 0, 0]  # the first pixel's first channel, per image
    assert np.allclose(floor_out[-1], base_pooled * gain[:, None, None, None], rtol=1e-6)
    assert not np.allclose(floor_out[0], _run(base, x)[0])
