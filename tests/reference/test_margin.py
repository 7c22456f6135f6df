"""The decision margin: how far a kernel statistic is from its threshold, relative to the
map's scale (anan_onnx.reference.literal.decision_margin, verify --margin)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anan_onnx import AnanParams, LiteralReference, convert_model
from anan_onnx.reference.literal import NEAR_TIE, decision_margin
from anan_onnx.reference.verify import margin_verdict, verify_models
from anan_onnx.testing import VARIANTS, build_cnn, random_batch


def _identity(y: np.ndarray) -> np.ndarray:
    return y


def _relu(y: np.ndarray) -> np.ndarray:
    return np.maximum(y, 0)


@pytest.mark.parametrize(
    ("values", "activation", "reduce", "expected"),
    [
        # mean 0.05, scale 1: every position moved by 0.05 brings the mean to 0
        ([1.0, -0.9], _identity, "mean", 0.05),
        # max -0.2, scale 0.5: the largest value reaches 0 after a move of 0.4 x 0.5
        ([-0.5, -0.2], _identity, "max", 0.4),
        # one of three positive; a second one (-0.1, scale 0.3) needs a move of 1/3
        ([0.3, -0.1, -0.2], _identity, "majority", 1 / 3),
        # post-ReLU mean: zero until the largest value (-0.2, scale 0.5) crosses 0
        ([-0.5, -0.2], _relu, "mean", 0.4),
    ],
)
def test_margin_is_the_move_that_flips_the_sign(values, activation, reduce, expected) -> None:
    pre = np.array(values, np.float32).reshape(1, 1, -1)
    found = decision_margin(pre, np.zeros((1, 1)), activation, reduce)
    assert found == pytest.approx(expected, rel=1e-5)


def test_margin_is_the_smallest_over_kernels_and_ignores_padding() -> None:
    """Positions equal to the bias saw only padding: they are exact and never move."""
    pre = np.array([[1.0, -0.9], [1.0, -0.5]], np.float32)[:, None, :]
    assert decision_margin(pre, np.zeros((2, 1)), _identity, "mean") == pytest.approx(0.05)
    padded = np.array([[0.25, 0.25, -0.2]], np.float32)[:, None, :]  # bias 0.25
    assert decision_margin(padded, np.full((1, 1), 0.25), _identity, "max") == 1.0


def test_near_ties_are_the_margins_below_the_near_tie_bound() -> None:
    """The literal loop's near-tie flag and its margin agree on every image."""
    base = build_cnn(VARIANTS["plain"], seed=3)
    params = AnanParams()
    conversion = convert_model(base, params)
    reference = LiteralReference(conversion.base, conversion.target_layer, params)
    x = random_batch(VARIANTS["plain"], 8, seed=4)
    result = reference.run(x, margin=True)
    assert result.margin is not None and np.all(result.margin > 0)
    assert np.array_equal(result.near_tie, result.margin <= NEAR_TIE * 1.0001)
    assert result.margin.min() < 1e-3 < result.margin.max()  # a spread, not a constant
    assert reference.run(x).margin is None  # only when asked for


def test_verify_reports_the_margin_per_image_and_overall() -> None:
    base = build_cnn(VARIANTS["plain"], seed=3)
    conversion = convert_model(base, AnanParams())
    x = random_batch(VARIANTS["plain"], 5, seed=4)
    report = verify_models(conversion.anan, conversion.base, inputs=x, margin=True)
    margins = [r.margin for r in report.per_image]
    assert report.margin == min(margins) and all(math.isfinite(m) for m in margins)
    assert "smallest decision margin" in report.summary()
    assert report.as_dict()["margin"] == report.margin
    plain = verify_models(conversion.anan, conversion.base, inputs=x)
    assert math.isnan(plain.margin) and "margin" not in plain.summary()


def test_margin_verdict_names_the_safe_precisions() -> None:
    assert "bf16, fp16" in margin_verdict(0.1)
    assert "fp16" in margin_verdict(0.005) and "bf16" not in margin_verdict(0.005)
    assert "float32" in margin_verdict(1e-4)
