"""Tests of anan_onnx.activations: the one table of activations, against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from anan_onnx.activations import ACTIVATIONS, is_monotone, node_activation

ATTRIBUTES = {"LeakyRelu": {"alpha": 0.2}, "Elu": {"alpha": 0.7}}


def one_node_model(op: str) -> tuple[onnx.ModelProto, onnx.NodeProto]:
    inputs, inits = ["y"], []
    if op == "Clip":
        inits = [
            numpy_helper.from_array(np.array(-0.5, np.float32), "low"),
            numpy_helper.from_array(np.array(0.8, np.float32), "high"),
        ]
        inputs += ["low", "high"]
    node = helper.make_node(op, inputs, ["out"], **ATTRIBUTES.get(op, {}))
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [64])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), node


@pytest.mark.parametrize("op", sorted(ACTIVATIONS))
def test_numpy_function_equals_onnxruntime(op):
    model, node = one_node_model(op)
    y = np.linspace(-6, 6, 64, dtype=np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"y": y})[0]
    got = node_activation(model.graph, node)(y.astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, y)  # the activation is applied, not skipped


def test_monotone_unless_a_negative_slope():
    assert all(is_monotone(op) for op in ACTIVATIONS)
    assert not is_monotone("LeakyRelu", -0.1) and not is_monotone("Elu", -1.0)
    assert is_monotone("Relu", -1.0)  # Relu has no alpha: the value is ignored
    assert not is_monotone("Softplus")  # not in the table
