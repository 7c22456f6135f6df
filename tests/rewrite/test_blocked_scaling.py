"""The final scaling in onnxruntime's blocked layout (``_blocked_scaling``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from anan_onnx import AnanError, AnanParams, convert_model, read_metadata
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

from equivalence import assert_matches_reference

WIDE = dataclasses.replace(VARIANTS["plain"], out_channels=16)  # whole NCHWc blocks
PARAMS = AnanParams(k=4, mu=2, a=1.5, b=0.3)
ROUTE = "anan/output_scaled/gain_map"


def _names(model: onnx.ModelProto) -> set[str]:
    return {n.name for n in model.graph.node}


@pytest.mark.parametrize("activation", ["Relu", "Sigmoid", "Tanh", "LeakyRelu"])
@pytest.mark.parametrize("pool", ["max", "max_padded", "max_no_act"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [None, 5], ids=["dynamic", "fixed"])
def test_blocked_route_matches_the_reference(activation, pool, bias, batch):
    variant = dataclasses.replace(WIDE, bias=bias)
    base = build_cnn(variant, activation=activation, pool=pool, seed=3)
    assert_matches_reference(base, PARAMS, random_batch(variant, 5), batch=batch)
    assert ROUTE in _names(convert_model(base, PARAMS, batch=batch).anan)


@pytest.mark.parametrize("activation", ["Relu", "Sigmoid", "LeakyRelu"])
@pytest.mark.parametrize("batch", [None, 5], ids=["dynamic", "fixed"])
def test_the_layer_output_is_bit_identical_to_the_broadcast_form(activation, batch):
    """The modulated layer's own output (made a graph output); the layers after it may
    round differently in the blocked layout, the layer itself does not."""
    base = build_cnn(WIDE, activation=activation, pool="max", seed=4)
    base.graph.output.append(onnx.helper.make_tensor_value_info("act_out", 1, ["N", 16, 5, 5]))
    x = random_batch(WIDE, 5)
    outputs = {}
    for scaling in ("blocked", "broadcast"):
        anan = convert_model(base, PARAMS, batch=batch, scaling=scaling).anan
        session = ort.InferenceSession(anan.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs[scaling] = session.run(None, {"x": x})
    assert np.array_equal(outputs["blocked"][1], outputs["broadcast"][1])
    assert np.allclose(outputs["blocked"][0], outputs["broadcast"][0], rtol=1e-5, atol=1e-6)


def test_channels_not_in_whole_blocks_use_the_broadcast_form():
    base = build_cnn(VARIANTS["plain"], pool="max")  # 6 channels
    assert ROUTE not in _names(convert_model(base, PARAMS).anan)


def test_scaling_is_recorded_and_checked():
    base = build_cnn(WIDE, pool="max")
    assert read_metadata(convert_model(base, PARAMS).anan)["scaling"] == "blocked"
    plain = convert_model(base, PARAMS, scaling="broadcast").anan
    assert read_metadata(plain)["scaling"] == "broadcast"
    with pytest.raises(AnanError, match="scaling must be one of blocked, broadcast"):
        convert_model(base, PARAMS, scaling="nchwc")


def _two_conv_cnn() -> onnx.ModelProto:
    """Conv 3→16, Relu, MaxPool, Conv 16→16, Relu, GlobalAveragePool: the paper's pattern."""
    rng = np.random.default_rng(0)
    h = onnx.helper
    inits = [
        onnx.numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
        for name, shape in [("w1", (16, 3, 3, 3)), ("b1", (16,)), ("w2", (16, 16, 3, 3))]
    ]
    nodes = [
        h.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3]),
        h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        h.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", kernel_shape=[3, 3]),
        h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        h.make_node("GlobalAveragePool", ["r2"], ["y"], name="gap"),
    ]
    graph = h.make_graph(
        nodes,
        "two_conv",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 20, 20])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 16, 1, 1])],
        inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)


def _layout_ops(model: onnx.ModelProto, tmp: Path) -> list[str]:
    """The op types of the graph onnxruntime actually runs (optimisation level all)."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(tmp / "optimized.onnx").graph.node]


@pytest.mark.parametrize("batch", [None, 4], ids=["dynamic", "fixed"])
def test_onnxruntime_keeps_the_blocked_layout(tmp_path, batch):
    """The blocked form adds no reorder to the base CNN's (the kernel means are a MatMul
    outside the blocked layout, the gains enter it through the selecting convolution); the
    broadcast form sends the pooled map out of the blocked layout and back."""
    base = _two_conv_cnn()
    base_ops = _layout_ops(base, tmp_path)
    if "ReorderOutput" not in base_ops:
        pytest.skip("onnxruntime has no NCHWc kernels on this CPU (they need x86 with AVX2)")
    blocked = _layout_ops(convert_model(base, PARAMS, batch=batch).anan, tmp_path)
    plain = _layout_ops(
        convert_model(base, PARAMS, batch=batch, scaling="broadcast").anan, tmp_path
    )
    assert blocked.count("ReorderOutput") == base_ops.count("ReorderOutput")
    assert blocked.count("ReorderInput") == base_ops.count("ReorderInput") == 0
    assert plain.count("ReorderInput") == 1  # the broadcast Mul/Add left the blocked layout
