"""Agreement of a compressed model with the FP32 model it came from: measured and checked.

A compressed model is a faithful copy of its FP32 ANAN model only if it predicts the same
classes on the images it will see. ``compress`` measures this on held-back images and warns
below :data:`MIN_AGREEMENT`; ``verify`` fails below it (``--min-agreement``). One threshold
and one rule, kept here because both the compression and the reference use them.

The rule is an exact one-sided binomial test, not the raw share: the agreement is *below*
the threshold when so few agreeing inputs would occur with probability under
:data:`SIGNIFICANCE` if the true agreement were the threshold. The raw share would fail a
model that agrees on exactly 99 % of all images on 41 % of 140-image samples (two or more
disagreements happen that often), while a broken model (35 % agreement) still fails on a
handful of inputs. With 16 inputs at 99 %, one disagreement passes and two fail.

Example:
    >>> Fp32Agreement(images=140, agreeing=138, max_abs_diff=0.03).meets(0.99)
    True
    >>> Fp32Agreement(images=100, agreeing=94, max_abs_diff=0.2).meets(0.99)
    False
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.runtime.labels import predicted_labels

if TYPE_CHECKING:  # the CLI reads MIN_AGREEMENT without importing onnxruntime
    from anan_onnx.runtime.session import Session

__all__ = [
    "MIN_AGREEMENT",
    "SIGNIFICANCE",
    "Fp32Agreement",
    "binomial_cdf",
    "check_fraction",
    "fp32_agreement",
]

#: the default share of inputs whose class must equal the FP32 model's (the compression goal)
MIN_AGREEMENT = 0.99
#: the level of the one-sided test: "below the threshold" is claimed at 95 % confidence
SIGNIFICANCE = 0.05


@dataclasses.dataclass
class Fp32Agreement:
    """Predictions of a compressed model against its FP32 model on the same inputs."""

    images: int
    agreeing: int
    max_abs_diff: float

    @property
    def agreement(self) -> float:
        return self.agreeing / self.images if self.images else float("nan")

    def merged(self, other: Fp32Agreement) -> Fp32Agreement:
        """This count and ``other`` (another chunk of inputs) as one."""
        diffs = [d for d in (self.max_abs_diff, other.max_abs_diff) if not math.isnan(d)]
        return Fp32Agreement(
            self.images + other.images,
            self.agreeing + other.agreeing,
            max(diffs) if diffs else float("nan"),
        )

    def p_value(self, threshold: float) -> float:
        """P(this few or fewer agree | the true agreement is ``threshold``)."""
        return binomial_cdf(self.agreeing, self.images, threshold)

    def meets(self, threshold: float) -> bool:
        """Whether the agreement is not significantly below ``threshold`` (never on no
        inputs): see the module docstring."""
        return self.images > 0 and self.p_value(threshold) >= SIGNIFICANCE

    def summary(self, threshold: float) -> str:
        if not self.images:
            return "vs FP32: no inputs compared"
        verdict = "consistent with" if self.meets(threshold) else "BELOW"
        diff = f"{self.max_abs_diff:.3g}" if math.isfinite(self.max_abs_diff) else "n/a"
        p = self.p_value(threshold)
        return (
            f"vs FP32: {self.agreeing}/{self.images} predictions equal ({self.agreement:.1%}; "
            f"{verdict} >= {threshold:.1%}, p = {p:.2g}), max abs diff {diff}"
        )


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), exact (log-space sum; no scipy at inference)."""
    if k >= n or p <= 0:
        return 1.0
    if k < 0 or p >= 1:
        return 0.0
    i = np.arange(k + 1)
    log_choose = math.lgamma(n + 1) - np.array([math.lgamma(j + 1) + math.lgamma(n - j + 1)
                                                 for j in i])  # fmt: skip
    terms = log_choose + i * math.log(p) + (n - i) * math.log1p(-p)
    top = terms.max()
    return float(min(1.0, math.exp(top) * np.exp(terms - top).sum()))


def fp32_agreement(compressed: Session, fp32: Session, inputs: np.ndarray) -> Fp32Agreement:
    """How many of ``inputs`` get the same class from both models.

    A non-finite output never agrees (``predicted_labels`` of NaN is not the FP32 class
    reliably, so such rows are counted as disagreeing explicitly).
    """
    if not len(inputs):
        return Fp32Agreement(0, 0, float("nan"))
    ours, theirs = compressed.predict(inputs), fp32.predict(inputs)
    finite = np.isfinite(ours.reshape(len(ours), -1)).all(axis=1)
    same = (predicted_labels(ours) == predicted_labels(theirs)) & finite
    with np.errstate(invalid="ignore"):
        diff = float(np.abs(ours.astype(np.float64) - theirs).max())
    return Fp32Agreement(len(inputs), int(same.sum()), diff)


def check_fraction(value: float, name: str = "--min-agreement") -> float:
    """``value`` if it is a share in [0, 1], else an :class:`AnanError` naming ``name``."""
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise AnanError(f"{name} must be a share between 0 and 1 (e.g. 0.99), got {value}")
    return value
