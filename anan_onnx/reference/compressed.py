"""``verify`` for compressed models: the FP32 model they came from, and how close they stay.

A compressed ANAN model (``anan-onnx compress``) is checked in two ways:

1. exactly (<= 1e-5), by :func:`anan_onnx.reference.verify.verify_models`, against the literal
   loop run on its *compressed base* (written beside it by ``compress``: the FP32 base model
   compressed with the same ranges and exclusions, so the two differ only by the astrocyte
   subgraph);
2. by :func:`fp32_agreement`: the share of inputs whose predicted class equals that of the
   FP32 ANAN model it was compressed from (a measure of compression loss, not of ANAN).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.runtime.labels import predicted_labels
from anan_onnx.runtime.session import Session

__all__ = ["Fp32Agreement", "check_compressed_pair", "fp32_agreement", "fp32_model_path"]


@dataclasses.dataclass
class Fp32Agreement:
    """Predictions of a compressed model against its FP32 model on the same inputs."""

    images: int
    agreeing: int
    max_abs_diff: float

    @property
    def agreement(self) -> float:
        return self.agreeing / self.images if self.images else float("nan")

    def summary(self) -> str:
        return (
            f"vs FP32: {self.agreeing}/{self.images} predictions equal ({self.agreement:.1%}), "
            f"max abs diff {self.max_abs_diff:.3g} (compression loss, not checked)"
        )


def check_compressed_pair(anan_meta: dict[str, str], base_meta: dict[str, str]) -> None:
    """Refuses a compressed ANAN model paired with a base compressed otherwise (or not)."""
    method = anan_meta.get("compression")
    if method != base_meta.get("compression"):
        raise AnanError(
            f"the ANAN model is {method or 'fp32'} but the base model is "
            f"{base_meta.get('compression', 'fp32')}: pass the base written with it "
            "(the ANAN model's base_model metadata names it)"
        )


def fp32_model_path(model: Path, metadata: dict[str, str], given: Path | None) -> Path:
    """The FP32 ANAN model: ``given``, else the ``fp32_model`` recorded beside ``model``."""
    path = given or model.with_name(metadata.get("fp32_model", ""))
    if not path.is_file():
        raise AnanError(f"FP32 model {path} not found: pass --fp32 with the FP32 .anan.onnx")
    return path


def fp32_agreement(compressed: Session, fp32: Session, inputs: np.ndarray) -> Fp32Agreement:
    """How many of ``inputs`` get the same class from both models."""
    ours, theirs = compressed.predict(inputs), fp32.predict(inputs)
    same = predicted_labels(ours) == predicted_labels(theirs)
    diff = float(np.abs(ours.astype(np.float64) - theirs).max()) if len(inputs) else float("nan")
    return Fp32Agreement(len(inputs), int(same.sum()), diff)
