"""The export's exactness check: the exported model computes what the input ANAN model
computes, modulation included.

On random images of the recorded preprocessing (as ``anan-onnx verify`` draws them), each
exported file (the ``.onnx`` and, for ort and mobile, the ``.ort``) must match the input
model within ``TOLERANCE``, and wherever the input model's output differs from its base
model's (the astrocytes changed the result) the exported output must differ from the base
model's too, so an export that lost the modulation cannot pass on closeness alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx

from anan_onnx.errors import AnanError
from anan_onnx.export.raw_input import raw_pixels
from anan_onnx.reference.verify import random_inputs
from anan_onnx.runtime.inputs import InputSpec
from anan_onnx.runtime.session import Session, run_fixed_batch

__all__ = ["CHECKED_SUFFIXES", "TOLERANCE", "ExactnessReport", "check_exact"]

#: the exported files that compute, each run by the engine that deploys it: onnxruntime
#: (.onnx, .ort), OpenVINO (.xml), LiteRT (.tflite)
CHECKED_SUFFIXES = (".onnx", ".ort", ".xml", ".tflite")
#: how the engine files are run (the settings a deployment must use to get these outputs)
ENGINE_SETTINGS = {
    ".xml": "OpenVINO CPU, INFERENCE_PRECISION_HINT=f32: set it, its bf16 default is not exact",
    ".tflite": "LiteRT interpreter, XNNPACK, float32",
}

TOLERANCE = 1e-5
#: An output counts as changed by the astrocytes above this (well above float noise).
CHANGED = 1e-4


@dataclasses.dataclass(frozen=True)
class ExactnessReport:
    """How one exported file compares with the input model."""

    file: str
    images: int
    max_diff: float
    changed: int  # images the input model's output differs from the base model's
    changed_kept: int  # of those, where the exported output differs from the base too
    engine: str = ""  # how the file was run, where not onnxruntime

    @property
    def passed(self) -> bool:
        return self.max_diff <= TOLERANCE and self.changed_kept == self.changed

    def line(self) -> str:
        modulation = (
            f"differs from the base model on {self.changed_kept}/{self.changed} images "
            "where the input model does"
            if self.changed >= 0
            else "base model not found: modulation not compared"
        )
        on = f" [{self.engine}]" if self.engine else ""
        return (
            f"{self.file}: max |diff| {self.max_diff:.1e} on {self.images} images; "
            f"{modulation}{on}"
        )


def check_exact(
    source: onnx.ModelProto,
    exported: list[Path],
    base: onnx.ModelProto | None,
    *,
    batch: int | None,
    images: int = 8,
    seed: int = 0,
    raw: InputSpec | None = None,
) -> list[ExactnessReport]:
    """Compares each exported file with ``source`` (and ``base``) on ``images`` images, fed
    in batches of ``batch`` (the exported fixed batch) or all at once (dynamic).

    ``raw``: the exported files take uint8 pixels (``--raw-input``) preprocessed as ``raw``
    says; ``source`` and ``base`` get the float inputs of the same pixels.

    Raises:
        AnanError: a file differs by more than ``TOLERANCE`` or lost the modulation.
    """
    reference = Session(source)
    n = images if batch is None else _round_up(images, batch)
    if raw is None:
        inputs = fed = random_inputs(reference, n, seed)
    else:
        fed, inputs = raw_pixels(raw, n, seed)
    expected = _run(reference, inputs, batch)
    base_out = _run(Session(base), inputs, batch) if base is not None else None
    reports = [_compare(Path(p), fed, expected, base_out, batch) for p in exported]
    for report in reports:
        if not report.passed:
            raise AnanError(
                f"the exported model is not exact ({report.line()}): nothing was written; "
                "export with --simplifier none, or report this with the model"
            )
    return reports


def _compare(
    path: Path,
    inputs: np.ndarray,
    expected: np.ndarray,
    base_out: np.ndarray | None,
    batch: int | None,
) -> ExactnessReport:
    got = _run_file(path, inputs, batch)
    if got.shape != expected.shape or not np.isfinite(got).all():
        raise AnanError(
            f"the exported {path.name} returns shape {got.shape} (finite: "
            f"{bool(np.isfinite(got).all())}) where the input model returns {expected.shape}: "
            "nothing was written; report this with the model"
        )
    diff = float(np.abs(got.astype(np.float64) - expected).max())
    engine = ENGINE_SETTINGS.get(path.suffix, "")
    if base_out is None:
        return ExactnessReport(path.name, len(inputs), diff, -1, -1, engine)
    changed = _per_image(np.abs(expected - base_out)) > CHANGED
    kept = _per_image(np.abs(got - base_out)) > CHANGED
    return ExactnessReport(
        path.name, len(inputs), diff, int(changed.sum()), int((changed & kept).sum()), engine
    )


def _run_file(path: Path, inputs: np.ndarray, batch: int | None) -> np.ndarray:
    """``path`` run on ``inputs`` by the engine that deploys it (see CHECKED_SUFFIXES)."""
    if path.suffix in (".onnx", ".ort") and inputs.dtype == np.float32:
        return _run(Session(path), inputs, batch)
    from anan_onnx.runtime.engines import open_engine

    if path.suffix == ".xml":
        engine = open_engine("openvino", precision="f32")
    elif path.suffix == ".tflite":
        engine = open_engine("litert")
    else:  # uint8 pixels (--raw-input): onnxruntime as is (Session feeds float32)
        engine = open_engine("ort")
    try:
        return run_fixed_batch(lambda b: engine.run(path, b), inputs, batch)
    finally:
        engine.close()


def _run(session: Session, inputs: np.ndarray, batch: int | None) -> np.ndarray:
    return run_fixed_batch(session.predict, inputs, batch)


def _per_image(diff: np.ndarray) -> np.ndarray:
    return diff.reshape(len(diff), -1).max(axis=1)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
