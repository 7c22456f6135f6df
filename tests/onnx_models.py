"""Small ONNX CNNs built with onnx.helper, covering the Conv variants the converter handles.

Each model is: Conv (variant) -> activation -> GlobalAveragePool -> Flatten -> MatMul ->
head (Softmax over 2 classes, or Sigmoid over 1). Weights are random but seeded.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclasses.dataclass(frozen=True)
class ConvVariant:
    """One configuration of the target convolution."""

    in_channels: int = 3
    out_channels: int = 6
    kernel: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    group: int = 1
    pads: tuple[int, int, int, int] | None = (1, 1, 1, 1)
    auto_pad: str | None = None
    bias: bool = True
    weights_as: str = "initializer"  # or "constant" (a Constant node)
    kernel_shape_attr: bool = True
    size: tuple[int, int] = (11, 11)


VARIANTS = {
    "plain": ConvVariant(),
    "stride2": ConvVariant(strides=(2, 2)),
    "dilation2": ConvVariant(dilations=(2, 2), pads=(2, 2, 2, 2)),
    "groups": ConvVariant(in_channels=4, out_channels=6, group=2),
    "depthwise": ConvVariant(in_channels=3, out_channels=6, group=3),
    "asymmetric_pads": ConvVariant(pads=(0, 1, 2, 0), kernel=(3, 2)),
    "same_upper": ConvVariant(pads=None, auto_pad="SAME_UPPER", strides=(2, 2), kernel=(4, 4)),
    "no_bias": ConvVariant(bias=False),
    "constant_node": ConvVariant(weights_as="constant"),
    "no_kernel_shape": ConvVariant(kernel_shape_attr=False, kernel=(5, 5), pads=(2, 2, 2, 2)),
}


def build_cnn(
    variant: ConvVariant = ConvVariant(),
    *,
    activation: str = "Relu",
    head: str = "softmax",
    pool: str | None = None,
    seed: int = 0,
    opset: int = 17,
) -> onnx.ModelProto:
    """A tiny NCHW CNN whose first (and only) Conv is ``variant``; batch is dynamic.

    ``pool``: ``None``, ``"max"`` (2×2, stride 2, after the activation), ``"max_padded"``
    (3×3, stride 2, pads 1, ceil mode) or ``"max_no_act"`` (MaxPool straight after the Conv,
    no activation).
    """
    rng = np.random.default_rng(seed)
    v = variant
    w = rng.normal(size=(v.out_channels, v.in_channels // v.group, *v.kernel)).astype(np.float32)
    inits = []
    nodes = []
    if v.weights_as == "constant":
        nodes.append(
            helper.make_node(
                "Constant", [], ["W"], name="weights", value=numpy_helper.from_array(w, "W_value")
            )
        )
    else:
        inits.append(numpy_helper.from_array(w, "W"))
    conv_inputs = ["x", "W"]
    if v.bias:
        inits.append(
            numpy_helper.from_array((rng.normal(size=v.out_channels) * 0.3).astype(np.float32), "B")
        )
        conv_inputs.append("B")
    attrs = dict(strides=list(v.strides), dilations=list(v.dilations), group=v.group)
    if v.kernel_shape_attr:
        attrs["kernel_shape"] = list(v.kernel)
    if v.auto_pad:
        attrs["auto_pad"] = v.auto_pad
    elif v.pads is not None:
        attrs["pads"] = list(v.pads)
    nodes.append(helper.make_node("Conv", conv_inputs, ["conv_out"], name="conv1", **attrs))
    if pool == "max_no_act":
        nodes.append(
            helper.make_node(
                "MaxPool",
                ["conv_out"],
                ["act_out"],
                name="pool1",
                kernel_shape=[2, 2],
                strides=[2, 2],
            )
        )
    else:
        nodes += _activation(activation, inits)
    if pool in ("max", "max_padded"):
        nodes[-1].output[0] = "act_map"
        extra = (
            {"kernel_shape": [2, 2], "strides": [2, 2]}
            if pool == "max"
            else {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}
        )
        nodes.append(helper.make_node("MaxPool", ["act_map"], ["act_out"], name="pool1", **extra))
    classes = 2 if head == "softmax" else 1
    dense = rng.normal(size=(v.out_channels, classes)).astype(np.float32)
    inits.append(numpy_helper.from_array(dense, "dense"))
    nodes += [
        helper.make_node("GlobalAveragePool", ["act_out"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "dense"], ["logits"], name="dense"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="head", axis=1)
        if head == "softmax"
        else helper.make_node("Sigmoid", ["logits"], ["probs"], name="head"),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", v.in_channels, *v.size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _activation(op: str, inits: list) -> list[onnx.NodeProto]:
    if op == "Clip":
        inits += [
            numpy_helper.from_array(np.array(-0.5, np.float32), "clip_min"),
            numpy_helper.from_array(np.array(1.5, np.float32), "clip_max"),
        ]
        return [
            helper.make_node("Clip", ["conv_out", "clip_min", "clip_max"], ["act_out"], name="act")
        ]
    attrs = {"alpha": 0.2} if op in ("LeakyRelu", "Elu") else {}
    return [helper.make_node(op, ["conv_out"], ["act_out"], name="act", **attrs)]


def random_batch(variant: ConvVariant, n: int, seed: int = 1) -> np.ndarray:
    """Inputs centred on 0 so that kernels both fire and stay silent."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, variant.in_channels, *variant.size)).astype(np.float32)
