"""Shared assertion: an ANAN graph equals the spec's literal per-image loop."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from anan_onnx import AnanParams, LiteralReference, convert_model
from anan_onnx.runtime.labels import labels_agree

TOLERANCE = 1e-5


def run_onnx(model: onnx.ModelProto, x: np.ndarray, **feeds) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {k: np.asarray(v, np.float32) for k, v in feeds.items()}
    return session.run(None, {session.get_inputs()[0].name: x, **feeds})[0]


def assert_matches_reference(
    base: onnx.ModelProto, params: AnanParams, x: np.ndarray, min_compared: int = 0, **kw
):
    """Converts ``base``, runs both on ``x``; returns (ours, reference result).

    At least ``min_compared`` inputs (default: half the batch) must be free of near-ties.
    """
    conversion = convert_model(base, params, **kw)
    ours = run_onnx(conversion.anan, x)
    ref = LiteralReference(conversion.base, conversion.target_layers, params).run(x)
    keep = ~ref.near_tie
    assert keep.sum() >= (min_compared or max(1, len(x) // 2)), f"near-ties: {ref.near_tie}"
    expected = ref.outputs[0][keep]
    agree = labels_agree(ours[keep], expected, TOLERANCE)
    assert agree.all(), f"predictions differ: {ours[keep][~agree]} vs {expected[~agree]}"
    diff = np.abs(ours[keep].astype(np.float64) - expected).max()
    assert diff <= TOLERANCE, f"max abs diff {diff:.3g} > {TOLERANCE}"
    return ours, ref


def triggered(ref, w0: np.ndarray) -> bool:
    """Whether the astrocytes changed some kernel of some image in the reference run."""
    return bool(np.any(np.abs(ref.weights - w0[None]) > 0))
