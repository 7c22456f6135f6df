"""Small seeded CNNs for the tests and the benchmarks (``benchmarks.bench``), built with
onnx.helper.

Two families:

- :func:`build_cnn`: a tiny NCHW CNN whose only Conv is a :class:`ConvVariant` (the Conv
  variants the converter handles): Conv (variant) -> activation -> GlobalAveragePool ->
  Flatten -> MatMul -> head (Softmax over 2 classes, or Sigmoid over 1);
- :func:`build_base_cnn`: the paper's kind of base CNN at a given size (NHWC input like a
  Keras export), and :func:`build_base_cnn_keras`, the same network in Keras.

Weights are random but seeded: the same arguments give the same bytes. Only numpy and onnx
are needed; the Keras builder imports Keras when called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from anan_onnx.options import DEFAULT_OPSET

__all__ = [
    "VARIANTS",
    "ConvVariant",
    "build_base_cnn",
    "build_base_cnn_keras",
    "build_cnn",
    "random_batch",
]


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
    opset: int = DEFAULT_OPSET,
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
    attrs: dict[str, Any] = dict(
        strides=list(v.strides), dilations=list(v.dilations), group=v.group
    )
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


def _activation(op: str, inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    if op == "Clip":
        inits += [
            numpy_helper.from_array(np.array(-0.5, np.float32), "clip_min"),
            numpy_helper.from_array(np.array(1.5, np.float32), "clip_max"),
        ]
        return [
            helper.make_node("Clip", ["conv_out", "clip_min", "clip_max"], ["act_out"], name="act")
        ]
    attrs: dict[str, Any] = {"alpha": 0.2} if op in ("LeakyRelu", "Elu") else {}
    return [helper.make_node(op, ["conv_out"], ["act_out"], name="act", **attrs)]


def random_batch(variant: ConvVariant, n: int, seed: int = 1) -> np.ndarray:
    """Inputs centred on 0 so that kernels both fire and stay silent."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, variant.in_channels, *variant.size)).astype(np.float32)


# --------------------------------------------------------------------------- the paper's base CNN


def build_base_cnn(
    size: int,
    kernel: int,
    filters: Sequence[int],
    dense: int = 128,
    *,
    seed: int = 0,
    name: str = "base_cnn",
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """The paper's kind of base CNN, built directly in ONNX (NHWC input like a Keras export).

    [Conv(kernel × kernel, valid) → ReLU → MaxPool 2] per entry of ``filters`` → Flatten →
    Dense(``dense``, ReLU) → Dense(1, sigmoid), on ``size`` × ``size`` × 3 images with a
    dynamic batch axis; Glorot-uniform weights and small normal biases drawn from ``seed``.
    The paper's CNN is ``build_base_cnn(128, 3, (32, 64, 128))``.
    """
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Transpose", ["image"], ["x0"], perm=[0, 3, 1, 2], name="to_nchw")]
    inits: list[onnx.TensorProto] = []
    channels, side, x = 3, size, "x0"
    for i, count in enumerate(filters, start=1):
        k = kernel
        w = _glorot(rng, (count, channels, k, k), channels * k * k, count * k * k)
        b = rng.normal(0.0, 0.05, count).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"conv{i}_w"),
            numpy_helper.from_array(b, f"conv{i}_b"),
        ]
        nodes += [
            helper.make_node(
                "Conv",
                [x, f"conv{i}_w", f"conv{i}_b"],
                [f"c{i}"],
                name=f"conv{i}",
                kernel_shape=[k, k],
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"),
            helper.make_node(
                "MaxPool",
                [f"r{i}"],
                [f"p{i}"],
                name=f"pool{i}",
                kernel_shape=[2, 2],
                strides=[2, 2],
            ),
        ]
        channels, side, x = count, (side - k + 1) // 2, f"p{i}"
    flat = channels * side * side
    layers = [
        ("dense", _glorot(rng, (flat, dense), flat, dense), dense),
        ("output", _glorot(rng, (dense, 1), dense, 1), 1),
    ]
    nodes += [
        helper.make_node("Transpose", [x], ["nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Flatten", ["nhwc"], ["flat"], name="flatten"),
    ]
    x = "flat"
    for layer, w, units in layers:
        b = rng.normal(0.0, 0.05, units).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"{layer}_w"),
            numpy_helper.from_array(b, f"{layer}_b"),
        ]
        act = "Relu" if layer == "dense" else "Sigmoid"
        nodes += [
            helper.make_node("Gemm", [x, f"{layer}_w", f"{layer}_b"], [f"{layer}_z"], name=layer),
            helper.make_node(act, [f"{layer}_z"], [f"{layer}_a"], name=f"{layer}_act"),
        ]
        x = f"{layer}_a"
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_base_cnn_keras(
    size: int,
    kernel: int,
    filters: Sequence[int],
    dense: int = 128,
    *,
    seed: int = 0,
    name: str = "base_cnn",
) -> Any:
    """The CNN of :func:`build_base_cnn` in Keras, with seeded random weights (Keras's own
    initialisers under ``seed``, so not the ONNX builder's values) and small random biases.

    The ReLU is a separate layer so that the TF loop can watch the first conv's
    pre-activation output (``signal=pre``); tf2onnx makes the same Conv → Relu of it.
    """
    import keras  # conversion-time only: not imported with this module

    layers = keras.layers
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=(size, size, 3), name="image"))
    for i, count in enumerate(filters, start=1):
        model.add(layers.Conv2D(count, kernel, name=f"conv{i}"))
        model.add(layers.Activation("relu", name=f"relu{i}"))
        model.add(layers.MaxPooling2D(2, name=f"pool{i}"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(dense, activation="relu", name="dense"))
    model.add(layers.Dense(1, activation="sigmoid", name="output"))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            bias = rng.normal(0.0, 0.05, weights[1].shape).astype(np.float32)
            layer.set_weights([weights[0], bias])
    return model


def _glorot(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int
) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)
