"""``verify``: the ANAN graph against the literal per-image loop, on random or given inputs.

Example:
    >>> report = verify_models("out/model.anan.onnx", "out/model.base.onnx", n=16)  # doctest: +SKIP
    >>> report.passed, report.agreement, report.max_abs_diff
    (True, 1.0, 2.9e-08)
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnx

from anan_onnx.errors import AnanError
from anan_onnx.metadata import DEFAULT_SCALE, is_anan, read_metadata
from anan_onnx.model_io import load_onnx
from anan_onnx.params import AnanParams
from anan_onnx.reference.literal import LiteralReference
from anan_onnx.runtime.labels import TOLERANCE, labels_agree
from anan_onnx.runtime.session import Session, providers_for

__all__ = [
    "VerifyReport",
    "random_inputs",
    "verify_models",
]


@dataclasses.dataclass
class VerifyReport:
    """Agreement between the ANAN model and the literal reference.

    Attributes:
        images: inputs tried.
        near_ties: inputs skipped because some kernel activity was within rounding of 0.
        agreeing: compared inputs whose predicted class is the same.
        max_abs_diff: largest |ANAN - reference| over the compared outputs.
    """

    images: int
    near_ties: int
    agreeing: int
    max_abs_diff: float
    tolerance: float = TOLERANCE

    @property
    def compared(self) -> int:
        return self.images - self.near_ties

    @property
    def agreement(self) -> float:
        return self.agreeing / self.compared if self.compared else float("nan")

    @property
    def passed(self) -> bool:
        return (
            self.compared > 0
            and self.agreeing == self.compared
            and self.max_abs_diff <= self.tolerance
        )

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}: {self.agreeing}/{self.compared} predictions agree "
            f"({self.agreement:.1%}), max abs diff {self.max_abs_diff:.3g} "
            f"(tolerance {self.tolerance:g}); {self.near_ties} near-tie input(s) skipped "
            f"of {self.images}"
        )

    def as_dict(self) -> dict[str, object]:
        return dict(
            dataclasses.asdict(self),
            compared=self.compared,
            agreement=self.agreement,
            passed=self.passed,
        )


def verify_models(
    anan: str | Path | onnx.ModelProto,
    base: str | Path | onnx.ModelProto,
    *,
    inputs: np.ndarray | None = None,
    n: int = 16,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    provider: str = "cpu",
) -> VerifyReport:
    """Compares an ANAN model with the literal loop run on its base model.

    Args:
        anan: the ANAN model (its metadata gives the parameters and target layer).
        base: the base model it was converted from.
        inputs: a batch in the model's layout; default: ``n`` random images.
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise AnanError(f"tolerance must be a finite number >= 0, got {tolerance}")
    session = Session(anan, provider=provider)
    if not session.is_anan:
        raise AnanError("the first model is not an ANAN model: pass the .anan.onnx file first")
    base_model = base if isinstance(base, onnx.ModelProto) else load_onnx(base)
    if is_anan(read_metadata(base_model)):
        raise AnanError(
            "the base model given is an ANAN model: pass the base model "
            "(the .base.onnx file written next to the .anan.onnx)"
        )
    if inputs is None:
        inputs = random_inputs(session, n, seed)
    params: AnanParams = session.params  # type: ignore[assignment]
    reference = LiteralReference(
        base_model, session.metadata["target_layer"], params, providers=providers_for(provider)
    ).run(inputs)
    ours = session.predict(inputs)
    expected = reference.outputs[0]
    keep = ~reference.near_tie
    diff = np.abs(ours[keep].astype(np.float64) - expected[keep]).max() if keep.any() else np.nan
    agree = labels_agree(ours[keep], expected[keep], tolerance)
    return VerifyReport(len(inputs), int((~keep).sum()), int(agree.sum()), float(diff), tolerance)


def random_inputs(session: Session, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random-pixel images in the model's layout and preprocessing."""
    if n < 1:
        raise AnanError(f"the number of inputs must be >= 1, got {n}")
    shape = [n, *session.input_shape[1:]]
    if not all(isinstance(d, int) for d in shape):
        raise AnanError(f"the model input {session.input_shape} has dynamic sizes: pass --inputs")
    scale = float(session.metadata.get("scale", DEFAULT_SCALE))
    offset = float(session.metadata.get("offset", 0.0))
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape)
    return (pixels * scale + offset).astype(np.float32)
