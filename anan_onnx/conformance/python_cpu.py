"""Runtime: onnxruntime's CPU execution provider from Python (the project's own path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

__all__ = ["PythonCpu", "run"]


def run(model: str | Path, batch: np.ndarray) -> np.ndarray:
    """The model's first output for ``batch`` (fed to its first input), rows per image."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    output = session.run(None, {session.get_inputs()[0].name: batch})[0]
    return np.asarray(output, np.float32).reshape(len(batch), -1)


class PythonCpu:
    """onnxruntime (Python) on the CPU."""

    name = "python-cpu"

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        return run(model, batch)

    def close(self) -> None:
        """Nothing to release: each run opens its own session."""
