"""The models and graph variants of the conformance matrix, with their expected outputs.

Shared by tests/test_conformance.py and tools/conformance_report.py. Each case is one
base model converted in one graph variant, saved once, with a small batch, the spec's
literal per-image loop on it (the reference) and the base model's outputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from anan_onnx import AnanParams, LiteralReference, convert_model, load_base
from anan_onnx.testing import VARIANTS as CONV_VARIANTS
from anan_onnx.testing import build_cnn, random_batch

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "models" / "catsdogs_cnn.keras"

TOLERANCE = 1e-5
#: An image counts as modulated where the reference moves an output by more than this
#: from the base model: there a runtime must differ from the base model too.
MODULATED = 10 * TOLERANCE
BATCH = 3

#: graph variant -> (convert_model keywords, parameters)
GRAPH_VARIANTS: dict[str, tuple[dict[str, object], AnanParams]] = {
    "default": ({}, AnanParams()),
    "tunable": ({"tunable": True}, AnanParams()),
    f"batch-{BATCH}": ({"batch": BATCH}, AnanParams()),
    "fold-steps": ({"fold_steps": True}, AnanParams()),
    "signal-post": ({}, AnanParams(signal="post")),
    "reduce-max": ({}, AnanParams(reduce="max")),
}

#: model -> what it is (the bundled Keras CNN needs TensorFlow to convert)
MODELS: dict[str, str] = {
    "catsdogs": "bundled Keras CNN, NHWC 128x128x3, sigmoid",
    "plain": "generated, NCHW 11x11x3, 3x3 Conv, softmax",
    "depthwise": "generated, NCHW 11x11x3, depthwise Conv, sigmoid",
    "stride2-maxpool": "generated, NCHW 11x11x3, 4x4 stride-2 SAME Conv, MaxPool, softmax",
}


def base_model(name: str) -> tuple[onnx.ModelProto, np.ndarray]:
    """The base model ``name`` and its test batch (BATCH images, seeded)."""
    if name == "catsdogs":
        # dark noise: in [0, 1) the base CNN saturates at p = 1 and some variants no longer
        # move it; in [0, 0.5) every variant changes every image's output
        batch = np.random.default_rng(20).random((BATCH, 128, 128, 3), dtype=np.float32) * 0.5
        return load_base(BUNDLED_MODEL), batch
    # seeds picked so that every graph variant changes some output (test_conformance checks)
    variant, kwargs = {
        "plain": (CONV_VARIANTS["plain"], {"seed": 3}),
        "depthwise": (CONV_VARIANTS["depthwise"], {"head": "sigmoid", "seed": 4}),
        "stride2-maxpool": (CONV_VARIANTS["same_upper"], {"pool": "max", "seed": 6}),
    }[name]
    return build_cnn(variant, **kwargs), random_batch(variant, BATCH, seed=4)


@dataclasses.dataclass
class Case:
    """One model in one graph variant, saved, with what every runtime must reproduce."""

    model: str
    variant: str
    path: Path
    base_path: Path
    batch: np.ndarray
    reference: np.ndarray  # (N, classes), the literal per-image loop
    base: np.ndarray  # (N, classes), the base model on onnxruntime CPU
    near_tie: np.ndarray  # (N,) images excluded from the comparison

    @property
    def modulated(self) -> np.ndarray:
        """Images whose reference output differs from the base model's."""
        return np.abs(self.reference - self.base).max(axis=1) > MODULATED


def make_case(
    model: str, variant: str, folder: Path, base: tuple[onnx.ModelProto, np.ndarray]
) -> Case:
    """Converts ``base`` in ``variant``, saves both models in ``folder``, runs the reference."""
    proto, batch = base
    kwargs, params = GRAPH_VARIANTS[variant]
    conversion = convert_model(proto, params, **kwargs)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model}.{variant}.anan.onnx"
    base_path = folder / f"{model}.base.onnx"
    onnx.save(conversion.anan, path)
    onnx.save(conversion.base, base_path)
    reference = LiteralReference(conversion.base, conversion.target_layer, params).run(batch)
    session = ort.InferenceSession(str(base_path), providers=["CPUExecutionProvider"])
    base_out = session.run(None, {session.get_inputs()[0].name: batch})[0]
    return Case(
        model=model,
        variant=variant,
        path=path,
        base_path=base_path,
        batch=batch,
        reference=np.asarray(reference.outputs[0], np.float64).reshape(len(batch), -1),
        base=np.asarray(base_out, np.float64).reshape(len(batch), -1),
        near_tie=np.asarray(reference.near_tie, bool),
    )


@dataclasses.dataclass
class CellResult:
    """What one runtime produced on one case."""

    max_abs_diff: float  # vs the reference, over the images without near-ties
    differs: int  # modulated images on which the runtime's output differs from the base's
    modulated: int  # images the astrocytes changed (reference vs base)
    shape_ok: bool

    @property
    def passed(self) -> bool:
        return (
            self.shape_ok
            and self.modulated > 0
            and self.max_abs_diff <= TOLERANCE
            and self.differs == self.modulated
        )


def compare(case: Case, outputs: np.ndarray) -> CellResult:
    """Checks a runtime's outputs against the case's reference and base outputs."""
    outputs = np.asarray(outputs, np.float64)
    if outputs.shape != case.reference.shape:
        return CellResult(float("inf"), 0, int(case.modulated.sum()), False)
    keep = ~case.near_tie
    diff = float(np.abs(outputs[keep] - case.reference[keep]).max()) if keep.any() else 0.0
    if not np.all(np.isfinite(outputs)):
        diff = float("inf")
    moved = np.abs(outputs - case.base).max(axis=1) > TOLERANCE
    modulated = case.modulated
    return CellResult(diff, int((moved & modulated).sum()), int(modulated.sum()), True)
