"""The oracle itself: the literal loop against hand-computed cases and a spec property."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from anan_onnx import AnanParams, LiteralReference
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

X = np.array([[[[1.0, -2.0], [3.0, 0.5]]]], np.float32)  # mean 0.625


def _one_by_one_model():
    """Two 1×1 kernels (w = 1 and -1, bias 0 and 0.5); output = the layer's spatial means."""
    w = numpy_helper.from_array(np.array([1.0, -1.0], np.float32).reshape(2, 1, 1, 1), "W")
    bias = numpy_helper.from_array(np.array([0.0, 0.5], np.float32), "B")
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv"),
        helper.make_node("GlobalAveragePool", ["y"], ["m"]),
        helper.make_node("Flatten", ["m"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 2, 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 2])],
        [w, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("counter", "expected"),
    [
        # activities 0.625 (u=+1) and -0.125 (u=-1): counters (1,-1), (2,-2) -> trigger at step 2
        # (w = 2, -0.5); absorbing holds ±2 at step 3 -> (4, -0.25).
        ("absorbing", [4.0, -0.25]),
        # clamp: step 3 activities 1.25 (u=+1, r stays 2, w0 -> 4) and -0.3125 + 0.5 = 0.1875
        # (u=+1, r -> -1, no trigger: w1 stays -0.5).
        ("clamp", [4.0, -0.5]),
    ],
)
def test_hand_computed_multiplicative(counter, expected):
    params = AnanParams(k=3, mu=2, a=2.0, b=0.5, counter=counter)
    result = LiteralReference(_one_by_one_model(), "conv", params).run(X)
    np.testing.assert_allclose(result.weights.reshape(-1), expected)
    np.testing.assert_allclose(result.outputs[0][0], np.array(expected) * 0.625 + [0, 0.5])


def test_hand_computed_additive_with_idle():
    # idle = 1 (as printed in the paper): untriggered steps add |w| -> w doubles (w1: -1 -> 0).
    # step 1: s = (0.625, -0.125): r = (1, -1), z = idle = 1: w = (2, 0)
    # step 2: s = (1.25, 0.5): u = (+1, +1), r = (2, 0): z = (a, idle) -> w = (2 + 2a, 0)
    params = AnanParams(k=2, mu=2, a=0.5, b=0.3, rule="additive", idle=1.0)
    result = LiteralReference(_one_by_one_model(), "conv", params).run(X)
    np.testing.assert_allclose(result.weights.reshape(-1), [3.0, 0.0])


@pytest.mark.parametrize("seed", range(6))
def test_absorbing_counter_scales_each_kernel_by_its_first_sign(seed):
    """The spec property the README states: W_j(k) = W0_j · m_j^(k-μ+1), m_j by sign of s_j(1)."""
    rng = np.random.default_rng(seed)
    mu = int(rng.integers(1, 4))
    params = AnanParams(k=int(rng.integers(mu, 8)), mu=mu, a=1.35, b=0.2)
    variant = VARIANTS["plain"]
    base = build_cnn(variant, seed=seed)
    x = random_batch(variant, 3, seed=seed)
    result = LiteralReference(base, "conv1", params).run(x)
    w0 = next(numpy_helper.to_array(i) for i in base.graph.initializer if i.name == "W")
    b0 = next(numpy_helper.to_array(i) for i in base.graph.initializer if i.name == "B")
    for image, weights in zip(x, result.weights, strict=True):
        first = np.array([_conv_mean(image, w0[j]) + b0[j] for j in range(len(w0))])
        factor = np.where(first > 0, params.a, 1 - params.b) ** (params.k - params.mu + 1)
        np.testing.assert_allclose(weights, w0 * factor[:, None, None, None], rtol=1e-5)


def _conv_mean(image: np.ndarray, kernel: np.ndarray) -> float:
    """Mean of a 3×3, pad-1, stride-1 convolution of one kernel (numpy, float64)."""
    padded = np.pad(image.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    h, w = image.shape[1:]
    total = sum(
        (padded[:, i : i + 3, j : j + 3] * kernel).sum() for i in range(h) for j in range(w)
    )
    return total / (h * w)
