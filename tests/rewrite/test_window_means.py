"""Kernel means from window sums of the input (``_window_means``), against onnxruntime's own
``GlobalAveragePool(Conv(x, W) + β)``."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

from anan_onnx.rewrite.builder import GraphBuilder
from anan_onnx.rewrite.geometry import ConvGeometry
from anan_onnx.rewrite.routes.window_means import window_means, window_sums

GEOMETRIES = {  # in_size, kernel, strides, dilations, pads (top, left, bottom, right)
    "valid": ConvGeometry((9, 8), (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
    "padded": ConvGeometry((7, 9), (3, 5), (1, 1), (1, 1), (1, 2, 1, 2)),
    "asymmetric": ConvGeometry((8, 8), (3, 3), (1, 1), (1, 1), (0, 1, 2, 0)),
    "strided": ConvGeometry((11, 10), (3, 3), (2, 3), (1, 1), (1, 0, 1, 0)),
    "dilated": ConvGeometry((12, 12), (3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
}


def _run(graph: ir.Graph, x: np.ndarray) -> np.ndarray:
    model = ir.serde.serialize_model(ir.Model(graph, ir_version=8))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _conv_means(x, weight, bias, geom: ConvGeometry, group: int) -> np.ndarray:
    """onnxruntime's Conv + GlobalAveragePool: (N, O, 1, 1)."""
    h = onnx.helper
    attrs = dict(strides=list(geom.strides), dilations=list(geom.dilations), pads=list(geom.pads))
    graph = h.make_graph(
        [
            h.make_node("Conv", ["x", "w", "b"], ["c"], group=group, **attrs),
            h.make_node("GlobalAveragePool", ["c"], ["m"]),
        ],
        "reference",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [h.make_tensor_value_info("m", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(weight, "w"), onnx.numpy_helper.from_array(bias, "b")],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _means_graph(x_shape, weight, bias, geom, group, *, column: bool) -> ir.Graph:
    b = GraphBuilder(np.dtype(np.float32))
    x = ir.val("x", ir.DataType.FLOAT, ir.Shape(list(x_shape)))
    sums = window_sums(b, x, geom, "means")
    out = window_means(b, sums, geom, weight, group, "activity", bias, column=column)
    graph = ir.Graph([x], [out], nodes=b.nodes, name="means", opset_imports={"": 17})
    for init in b.initializers:
        graph.register_initializer(init)
    return graph


@pytest.mark.parametrize("group", [1, 2])
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("column", [True, False], ids=["column", "conv"])
def test_window_means_equal_the_mean_of_the_convolution(geometry, group, column):
    geom = GEOMETRIES[geometry]
    rng = np.random.default_rng(7)
    channels, kernels = 4, 6
    x = rng.normal(size=(3, channels, *geom.in_size)).astype(np.float32)
    weight = rng.normal(size=(kernels, channels // group, *geom.kernel)).astype(np.float32)
    bias = rng.normal(size=kernels).astype(np.float32)
    got = _run(_means_graph(x.shape, weight, bias, geom, group, column=column), x)
    want = _conv_means(x, weight, bias, geom, group)
    if column:
        assert got.shape == (3, 1, kernels, 1)
        got = got.reshape(3, kernels, 1, 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_column_without_bias_is_one_matmul():
    geom = GEOMETRIES["valid"]
    weight = np.ones((2, 1, 3, 3), np.float32)
    graph = _means_graph((1, 1, 9, 8), weight, None, geom, 1, column=True)
    assert [n.op_type for n in graph][-2:] == ["Reshape", "MatMul"]
    x = np.ones((1, 1, 9, 8), np.float32)
    assert np.allclose(_run(graph, x), 9.0)  # every window of ones sums to 9
