"""The largest ANAN gain, and the float32 check shared by ``convert`` and ``tune``.

After k steps every weight of a kernel is its initial value times a gain g (spec: "The
identity that makes it cheap"). The gain is largest when a kernel triggers at every step
it can:

* multiplicative rule: ``g <= m ** (k - mu + 1)`` with ``m = max(1, a, |1 - b|)``: the
  counter needs ``mu`` steps to reach ``±mu``, and every step from then on multiplies by
  ``a`` or ``1 - b``;
* additive rule: ``|g| <= (1 + max(a, b, |idle|)) ** n`` (each step adds at most
  ``|g|·|z|``), with ``n = k - mu + 1`` when ``idle = 0`` and ``n = k`` otherwise.

The target layer's response to an image is then at most
``g · max_j ‖W_j‖₁ · max|x| + max|β|``. If that bound, or the gain itself, exceeds
float32's largest number (3.4e38), the model would compute Inf and NaN for some images,
so the parameters are refused before anything is written. A target Conv with NaN or Inf
weights is refused too. docs/limits.md.

Example:
    >>> largest_gain(AnanParams(k=4, mu=2, a=1.5, b=0.3))
    3.375
"""

from __future__ import annotations

import math

import numpy as np

from anan_onnx.choices import Rule
from anan_onnx.errors import AnanError
from anan_onnx.params import AnanParams

__all__ = [
    "FLOAT32_MAX",
    "check_finite_weights",
    "check_gains",
    "check_worst",
    "input_bound",
    "largest_gain",
]

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _steps_and_factor(params: AnanParams, k: int | None) -> tuple[int, float, str]:
    """(steps that can change the gain, largest factor per step, formula for messages)."""
    k = params.k if k is None else k
    triggered = max(0, k - params.mu + 1)
    if params.rule == Rule.MULTIPLICATIVE:
        factor = max(1.0, params.a, abs(1.0 - params.b))
        return triggered, factor, "max(a, |1-b|)^(k-mu+1)"
    factor = 1.0 + max(params.a, params.b, abs(params.idle))
    if params.idle:
        return k, factor, "(1 + max(a, b, |idle|))^k"
    return triggered, factor, "(1 + max(a, b))^(k-mu+1)"


def log_largest_gain(params: AnanParams, k: int | None = None) -> float:
    """Natural log of :func:`largest_gain` (finite even where the gain is not)."""
    steps, factor, _ = _steps_and_factor(params, k)
    return steps * math.log(factor)


def largest_gain(params: AnanParams, k: int | None = None) -> float:
    """Upper bound of |g| after ``k`` steps (default ``params.k``); ``inf`` if it overflows."""
    log = log_largest_gain(params, k)
    return math.exp(log) if log < 709 else math.inf


def check_finite_weights(weight: np.ndarray, bias: np.ndarray | None, layer: str) -> None:
    """Refuses a target Conv whose weights or bias hold NaN or Inf."""
    for what, values in (("weights", weight), ("bias", bias)):
        if values is not None and not np.isfinite(values).all():
            bad = int(values.size - np.isfinite(values).sum())
            raise AnanError(
                f"the {what} of Conv {layer!r} hold {bad} NaN or Inf value(s): every output "
                "would be NaN; fix or retrain the model"
            )


def check_gains(
    params: AnanParams,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    x_max: float = 1.0,
    k: int | None = None,
    layer: str = "",
) -> None:
    """Refuses parameters whose gains overflow float32 for this layer (see the module doc).

    Args:
        params: the ANAN parameters.
        weight: the target Conv's weights (O × C × kh × kw).
        bias: its bias, if any.
        x_max: the largest |input| (from the recorded preprocessing; 1 when unknown).
        k: steps unrolled (a tunable model's k_max); default ``params.k``.
        layer: the Conv's name, for messages.
    """
    check_finite_weights(weight, bias, layer)
    steps, factor, formula = _steps_and_factor(params, k)
    log_gain = steps * math.log(factor)
    w = np.asarray(weight, np.float64).reshape(len(weight), -1)
    l1 = float(np.abs(w).sum(axis=1).max()) if w.size else 0.0
    beta = float(np.abs(bias).max()) if bias is not None and np.size(bias) else 0.0
    log_limit = math.log(FLOAT32_MAX)
    response = log_gain + math.log(l1 * max(x_max, 1e-30)) if l1 > 0 else -math.inf
    if log_gain <= log_limit and response <= math.log(max(FLOAT32_MAX - beta, 1.0)):
        return
    shown = f"{math.exp(log_gain):.3g}" if log_gain < 709 else f"e^{log_gain:.0f}"
    raise AnanError(
        f"the ANAN gains overflow float32: the largest gain {formula} = {factor:g}^{steps} = "
        f"{shown}, and the response of Conv {layer!r} can reach "
        f"{_power(response)} (float32 ends at 3.4e38) with {params.describe()}: every output "
        "would be Inf or NaN; pass a smaller a, b (or idle) or k"
    )


def _power(log_value: float) -> str:
    if log_value < 709:
        return f"{math.exp(log_value):.3g}"
    return f"about 10^{log_value / math.log(10):.0f}"


def input_bound(scale: float, offset: float) -> float:
    """The largest |x| of an image input ``x = pixel * scale + offset``, pixels 0-255."""
    return max(abs(offset), abs(255.0 * scale + offset))


def check_worst(
    candidates: list[AnanParams],
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    x_max: float = 1.0,
    layer: str = "",
) -> None:
    """:func:`check_gains` for the candidate with the largest gain (a tuning grid)."""
    if candidates:
        worst = max(candidates, key=log_largest_gain)
        check_gains(worst, weight, bias, x_max=x_max, layer=layer)
