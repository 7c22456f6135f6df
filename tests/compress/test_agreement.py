"""The FP32-agreement rule: an exact one-sided binomial test, checked against scipy."""

from __future__ import annotations

import pytest
from scipy import stats

from anan_onnx.runtime.agreement import SIGNIFICANCE, Fp32Agreement, binomial_cdf


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [(138, 140, 0.99), (14, 16, 0.99), (15, 16, 0.99), (0, 1, 0.99), (94, 100, 0.99),
     (293, 300, 0.99), (50, 1000, 0.3), (7, 7, 0.5), (0, 5, 0.0), (3, 5, 1.0)],
)  # fmt: skip
def test_binomial_cdf_matches_scipy(k: int, n: int, p: float) -> None:
    assert binomial_cdf(k, n, p) == pytest.approx(stats.binom.cdf(k, n, p), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    ("agreeing", "images", "meets"),
    [(138, 140, True), (15, 16, True), (14, 16, False), (0, 1, False), (1, 1, True),
     (94, 100, False), (50, 140, False), (0, 0, False)],
)  # fmt: skip
def test_meets_is_the_one_sided_test(agreeing: int, images: int, meets: bool) -> None:
    result = Fp32Agreement(images, agreeing, 0.0)
    assert result.meets(0.99) is meets
    if not images:  # nothing compared: never a pass, never a number like nan%
        assert result.summary(0.99) == "vs FP32: no inputs compared"
        return
    assert meets == (stats.binom.cdf(agreeing, images, 0.99) >= SIGNIFICANCE)
    assert ("BELOW" in result.summary(0.99)) is (not meets)
