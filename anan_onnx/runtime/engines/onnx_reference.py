"""Engine: ``onnx.reference.ReferenceEvaluator``, the ONNX operators as the spec writes them
(numpy, float32 throughout): a second opinion independent of every optimising runtime,
slow (pure Python), for small models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from anan_onnx.runtime.engines import rows

__all__ = ["OnnxReference"]


class OnnxReference:
    """The ONNX reference implementation; each model is loaded once."""

    name = "reference"
    precision = "f32"

    def __init__(self) -> None:
        self._loaded: dict[Path, tuple[ReferenceEvaluator, str]] = {}

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        key = Path(model).resolve()
        if key not in self._loaded:
            proto = onnx.load(key)
            initialized = {i.name for i in proto.graph.initializer}
            first = next(i.name for i in proto.graph.input if i.name not in initialized)
            self._loaded[key] = ReferenceEvaluator(proto), first
        evaluator, name = self._loaded[key]
        outputs = evaluator.run(None, {name: np.asarray(batch)})
        return rows(cast(Sequence[Any], outputs)[0], batch)  # a list, typed as a dict

    def close(self) -> None:
        self._loaded.clear()
