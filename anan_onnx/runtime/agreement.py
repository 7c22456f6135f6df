"""Agreement of a compressed model with the FP32 model it came from: measured and checked.

A compressed model is a faithful copy of its FP32 ANAN model only if it predicts the same
classes on the images it will see. ``compress`` measures this on held-back images and warns
below :data:`MIN_AGREEMENT`; ``verify`` fails below it (``--min-agreement``). One threshold,
kept here because both the compression and the reference use it.

Example:
    >>> Fp32Agreement(images=100, agreeing=98, max_abs_diff=0.2).meets(MIN_AGREEMENT)
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

__all__ = ["MIN_AGREEMENT", "Fp32Agreement", "check_fraction", "fp32_agreement"]

#: the default share of inputs whose class must equal the FP32 model's (the compression goal)
MIN_AGREEMENT = 0.99


@dataclasses.dataclass
class Fp32Agreement:
    """Predictions of a compressed model against its FP32 model on the same inputs."""

    images: int
    agreeing: int
    max_abs_diff: float

    @property
    def agreement(self) -> float:
        return self.agreeing / self.images if self.images else float("nan")

    def meets(self, threshold: float) -> bool:
        """Whether the measured agreement reaches ``threshold`` (never on no inputs)."""
        return self.images > 0 and self.agreement >= threshold

    def summary(self, threshold: float) -> str:
        verdict = "ok" if self.meets(threshold) else "BELOW"
        diff = f"{self.max_abs_diff:.3g}" if math.isfinite(self.max_abs_diff) else "n/a"
        return (
            f"vs FP32: {self.agreeing}/{self.images} predictions equal ({self.agreement:.1%}, "
            f"{verdict} the minimum {threshold:.1%}), max abs diff {diff}"
        )


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
