"""The activations ANAN understands right after its target convolution: one table.

``signal='post'`` reads the kernel response after the layer's activation, so every part
that handles that activation reads this table: the rewrite (which activation follows the
target, whether a MaxPool commutes with it), the literal reference (its numpy function,
to bound near-ties) and the fast grid (its numpy function, for post-activation
activities). It imports neither the rewrite nor the reference, so the reference stays
independent of the rewrite.

Example:
    >>> relu = numpy_activation("Relu")
    >>> relu(np.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    >>> is_monotone("LeakyRelu", alpha=-0.5)
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx

from anan_onnx.onnx_build import attribute_value
from anan_onnx.onnx_proto import constant_array

__all__ = ["ACTIVATIONS", "ALPHA_DEFAULTS", "is_monotone", "node_activation", "numpy_activation"]

Function = Callable[[np.ndarray], np.ndarray]

#: ``alpha`` of the activations that have one, when the node does not set it (ONNX defaults)
ALPHA_DEFAULTS: dict[str, float] = {"LeakyRelu": 0.01, "Elu": 1.0}


def _relu(alpha: float, low: float, high: float) -> Function:
    return lambda y: np.maximum(y, 0)


def _leaky_relu(alpha: float, low: float, high: float) -> Function:
    return lambda y: np.where(y > 0, y, alpha * y)


def _elu(alpha: float, low: float, high: float) -> Function:
    return lambda y: np.where(y > 0, y, alpha * np.expm1(np.minimum(y, 0)))


def _sigmoid(alpha: float, low: float, high: float) -> Function:
    return lambda y: 0.5 * (1 + np.tanh(y / 2))  # the logistic function, overflow-free


def _tanh(alpha: float, low: float, high: float) -> Function:
    return np.tanh


def _clip(alpha: float, low: float, high: float) -> Function:
    return lambda y: np.clip(y, low, high)


#: ONNX op type -> maker of its numpy function from (alpha, min, max)
ACTIVATIONS: dict[str, Callable[[float, float, float], Function]] = {
    "Relu": _relu,
    "LeakyRelu": _leaky_relu,
    "Elu": _elu,
    "Sigmoid": _sigmoid,
    "Tanh": _tanh,
    "Clip": _clip,
}


def is_monotone(op_type: str, alpha: float | None = None) -> bool:
    """Whether the activation is non-decreasing: all in the table, except LeakyRelu and Elu
    with a negative ``alpha`` (``None``: the ONNX default)."""
    if op_type not in ACTIVATIONS:
        return False
    return alpha is None or alpha >= 0 or op_type not in ALPHA_DEFAULTS


def numpy_activation(
    op_type: str, alpha: float | None = None, low: float = -math.inf, high: float = math.inf
) -> Function:
    """The activation as a numpy function; ``low``/``high`` are Clip's bounds."""
    if alpha is None:
        alpha = ALPHA_DEFAULTS.get(op_type, 1.0)
    return ACTIVATIONS[op_type](alpha, low, high)


def node_activation(graph: onnx.GraphProto, node: onnx.NodeProto) -> Function:
    """The numpy function of an activation node of ``graph`` (attributes and Clip inputs)."""
    attrs = {a.name: attribute_value(a) for a in node.attribute}
    low = _scalar_input(graph, node, 1, attrs.get("min", -math.inf))
    high = _scalar_input(graph, node, 2, attrs.get("max", math.inf))
    return numpy_activation(node.op_type, attrs.get("alpha"), low, high)


def _scalar_input(graph: onnx.GraphProto, node: onnx.NodeProto, index: int, default: float):
    if len(node.input) <= index or not node.input[index]:
        return default
    return float(constant_array(graph, node.input[index]))
