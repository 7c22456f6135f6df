"""Engine: onnxruntime's CPU execution provider (the project's own, and the baseline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from anan_onnx.runtime.engines import rows

__all__ = ["Ort"]


class Ort:
    """onnxruntime on the CPU, default session options (its precision is always float32)."""

    name = "ort"
    precision = "f32"

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        return rows(session.run(None, {session.get_inputs()[0].name: batch})[0], batch)

    def close(self) -> None:
        """Nothing to release: each run opens its own session."""
