"""``verify`` for compressed models: the FP32 model they came from, and how close they stay.

A compressed ANAN model (``anan-onnx compress``) is checked in two ways:

1. by :func:`verify_compressed_models`, against the literal loop run on its *compressed
   base* (written beside it by ``compress``: the FP32 base model compressed with the same
   ranges and exclusions, so the two differ only by the astrocyte subgraph): exactly
   (<= 1e-5) where the FP32 astrocyte subgraph hands its output to the compressed tail, and
   end to end with every prediction equal and outputs within :data:`TAIL_TOLERANCE` (the
   tail may round a 1e-7 hand-over difference to the other side of one FP16/INT8 step);
2. by :func:`fp32_agreement`: the share of inputs whose predicted class equals that of the
   FP32 ANAN model it was compressed from (a measure of compression loss, not of ANAN).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from anan_onnx.errors import AnanError
from anan_onnx.model_io import recorded_file
from anan_onnx.params import AnanParams
from anan_onnx.reference.literal import LiteralReference
from anan_onnx.reference.verify import VerifyReport, summary_number, target_layer
from anan_onnx.runtime.labels import TOLERANCE, predicted_labels
from anan_onnx.runtime.session import Session, providers_for

#: the astrocyte subgraph's node names start with this (anan_onnx.rewrite names them)
ANAN_PREFIX = "anan/"

__all__ = [
    "CompressedReport",
    "Fp32Agreement",
    "check_compressed_pair",
    "fp32_agreement",
    "fp32_model_path",
    "handover_tensors",
    "verify_compressed_models",
]


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
    path = given or recorded_file(model, metadata, "fp32_model", "--fp32")
    if not path.is_file():
        raise AnanError(f"FP32 model {path} not found: pass --fp32 with the FP32 .anan.onnx")
    return path


def fp32_agreement(compressed: Session, fp32: Session, inputs: np.ndarray) -> Fp32Agreement:
    """How many of ``inputs`` get the same class from both models."""
    ours, theirs = compressed.predict(inputs), fp32.predict(inputs)
    same = predicted_labels(ours) == predicted_labels(theirs)
    diff = float(np.abs(ours.astype(np.float64) - theirs).max()) if len(inputs) else float("nan")
    return Fp32Agreement(len(inputs), int(same.sum()), diff)


#: how far the compressed tail may carry a hand-over difference below the tolerance: a
#: 1e-7 float difference there can round to the other side of one FP16/INT8 step
TAIL_TOLERANCE = 1e-3


@dataclasses.dataclass
class CompressedReport:
    """``verify`` of a compressed model against the literal loop on its compressed base.

    Attributes:
        outputs: the end-to-end comparison (:class:`VerifyReport`, its tolerance 1e-5).
        handover_diff: max |ANAN - literal| of the FP32 tensors the astrocyte subgraph hands
            to the compressed tail (the modulated layer's output), relative to the tensor's
            largest magnitude where that exceeds 1: the exact part.
        tail_tolerance: the bound on ``outputs.max_abs_diff``.
    """

    outputs: VerifyReport
    handover_diff: float
    tail_tolerance: float = TAIL_TOLERANCE

    @property
    def passed(self) -> bool:
        o = self.outputs
        return (
            o.compared > 0
            and o.agreeing == o.compared
            and o.non_finite == 0
            and self.handover_diff <= o.tolerance
            and o.max_abs_diff <= self.tail_tolerance
        )

    def summary(self) -> str:
        o = self.outputs
        verdict = "PASS" if self.passed else "FAIL"
        handover, diff = summary_number(self.handover_diff), summary_number(o.max_abs_diff)
        return (
            f"{verdict}: hand-over to the compressed tail max diff {handover} "
            f"(scaled, tolerance {o.tolerance:g}); outputs: {o.agreeing}/{o.compared} predictions "
            f"agree, max abs diff {diff} (tail bound {self.tail_tolerance:g}); "
            f"{o.near_ties} near-tie input(s) skipped of {o.images}"
        )

    def as_dict(self) -> dict[str, object]:
        return dict(
            self.outputs.as_dict(),
            handover_diff=self.handover_diff,
            tail_tolerance=self.tail_tolerance,
            passed=self.passed,
        )


def verify_compressed_models(
    anan: onnx.ModelProto,
    base: onnx.ModelProto,
    inputs: np.ndarray,
    *,
    tolerance: float = TOLERANCE,
    tail_tolerance: float = TAIL_TOLERANCE,
    provider: str = "cpu",
) -> CompressedReport:
    """The compressed ANAN model against the literal loop on its compressed base.

    The astrocytes are held exact where they hand over (the FP32 output of the ``anan/*``
    subgraph against the literal loop's modulated layer, same tensor in the compressed
    base), and the end-to-end outputs to ``tail_tolerance`` with every prediction equal.
    """
    from anan_onnx.reference.verify import verify_models

    outputs = verify_models(anan, base, inputs=inputs, tolerance=tolerance, provider=provider)
    names = [t for t in handover_tensors(anan) if any(t in n.output for n in base.graph.node)]
    if not names:
        raise AnanError(
            "the base model does not produce the tensors the astrocyte subgraph hands on: "
            "pass the base written with the compressed model"
        )
    session = Session(anan, provider=provider)
    params: AnanParams = session.params  # type: ignore[assignment]
    reference = LiteralReference(
        _with_outputs(base, names),
        target_layer(session.metadata),
        params,
        providers=providers_for(provider),
    ).run(inputs)
    expected = reference.outputs[len(base.graph.output) :]
    ours = Session(_with_outputs(anan, names), provider=provider).run(inputs)
    ours = ours[len(anan.graph.output) :]
    keep = ~reference.near_tie
    diffs = [_scaled_diff(o[keep], e[keep]) for o, e in zip(ours, expected, strict=True)]
    diff = max(diffs) if keep.any() else float("nan")
    return CompressedReport(outputs, diff, tail_tolerance)


def _scaled_diff(ours: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference, relative to the tensor's largest magnitude when that exceeds 1:
    the hand-over maps are pre-pool activations (tens or hundreds), not probabilities."""
    scale = max(1.0, float(np.abs(expected).max()))
    return float(np.abs(ours.astype(np.float64) - expected).max()) / scale


def handover_tensors(model: onnx.ModelProto) -> list[str]:
    """Tensors an ``anan/*`` node produces and a node outside the subgraph reads."""
    inside = [n for n in model.graph.node if n.name.startswith(ANAN_PREFIX)]
    read = {t for n in model.graph.node if not n.name.startswith(ANAN_PREFIX) for t in n.input}
    return sorted({t for n in inside for t in n.output if t in read})


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    copy.graph.output.extend(
        helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
    )
    return copy
