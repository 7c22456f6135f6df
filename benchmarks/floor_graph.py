"""The floor stand-in: the base CNN plus the least extra work any exact ANAN graph does.

Whatever the formulation, the modulated layer's output differs from the base CNN's by a
per-image, per-kernel gain, so some pass must multiply a map of that layer by it. The
cheapest map to multiply is the one after the pool where a MaxPool follows (the gains
commute with it, ``routes/pool_commute.py``), else the activation's output. The stand-in
is the base CNN with exactly that: one broadcast ``Mul`` by an (N, O, 1, 1) gain, the gain
taken from one input pixel per image (a ``Slice``, so it costs nothing yet is per image
and run-time: onnxruntime cannot fold it into the convolution's weights). Its outputs are
wrong on purpose; it only times the least extra pass. ``cpu_ratio --floor`` and
``edge_cpu_ratio --floor`` measure it next to the real graphs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["floor_stand_in"]

#: ops that may sit between the first Conv and the map the stand-in multiplies
_ELEMENTWISE = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "HardSigmoid"}


def floor_stand_in(base: onnx.ModelProto, gain: float = 1.05) -> onnx.ModelProto:
    """``base`` with one per-image, per-kernel ``Mul`` after its first Conv's block."""
    model = onnx.ModelProto()
    model.CopyFrom(base)
    graph = model.graph
    conv = next(n for n in graph.node if n.op_type == "Conv")
    channels = _out_channels(graph, conv)
    last = conv
    while (user := _only_user(graph, last.output[0])) is not None and (
        user.op_type in _ELEMENTWISE or user.op_type == "MaxPool"
    ):
        last = user
        if user.op_type == "MaxPool":
            break
    target = last.output[0]
    scaled = f"{target}/floor_scaled"
    for node in graph.node:
        node.input[:] = [scaled if name == target else name for name in node.input]
    for output in graph.output:
        if output.name == target:
            output.name = scaled
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.zeros(4, np.int64), "floor/starts"),
            numpy_helper.from_array(np.array([2**62, 1, 1, 1], np.int64), "floor/ends"),
            numpy_helper.from_array(np.full((1, channels, 1, 1), gain, np.float32), "floor/g"),
        ]
    )
    added = [
        helper.make_node("Slice", [conv.input[0], "floor/starts", "floor/ends"], ["floor/px"]),
        helper.make_node("Mul", ["floor/px", "floor/g"], ["floor/gain"]),
        helper.make_node("Mul", [target, "floor/gain"], [scaled], name="floor/scaled"),
    ]
    index = list(graph.node).index(last) + 1
    for offset, node in enumerate(added):
        graph.node.insert(index + offset, node)
    return model


def _only_user(graph: onnx.GraphProto, value: str) -> onnx.NodeProto | None:
    users = [n for n in graph.node if value in n.input]
    return users[0] if len(users) == 1 else None


def _out_channels(graph: onnx.GraphProto, conv: onnx.NodeProto) -> int:
    weights = {i.name: i for i in graph.initializer}
    if conv.input[1] in weights:
        return int(weights[conv.input[1]].dims[0])
    constant = next(n for n in graph.node if n.output[0] == conv.input[1])
    return int(numpy_helper.to_array(constant.attribute[0].t).shape[0])
