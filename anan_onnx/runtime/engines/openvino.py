"""Engine: OpenVINO on the CPU.

OpenVINO's CPU plugin infers in bf16 by default where the CPU has AMX or AVX512-BF16 (its
``INFERENCE_PRECISION_HINT``): a kernel statistic near the astrocyte threshold can change
sign there and flip a decision (docs/engines.md). ``precision=None`` keeps that default, as
a deployment that sets nothing gets it; ``"f32"`` pins float32, which is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx.runtime.engines import import_extra, rows

__all__ = ["OpenVino", "PRECISION_HINT"]

PRECISION_HINT = "INFERENCE_PRECISION_HINT"
DEVICE = "CPU"


class OpenVino:
    """OpenVINO's CPU plugin; each model is compiled once."""

    name = "openvino"

    def __init__(self, precision: str | None = None) -> None:
        ov: Any = import_extra("openvino", "openvino")
        self._core = ov.Core()
        self.config = {} if precision is None else {PRECISION_HINT: precision}
        self._compiled: dict[Path, Any] = {}

    @property
    def precision(self) -> str:
        """The precision the CPU plugin infers in (``f32``, ``bf16``): the last compiled
        model's, which is f32 where the CPU lacks the precision asked for; before any, the
        device's default or the pinned one."""
        if self._compiled:
            compiled = next(reversed(self._compiled.values()))
            return _type_name(compiled.get_property(PRECISION_HINT))
        if PRECISION_HINT in self.config:
            return self.config[PRECISION_HINT]
        return _type_name(self._core.get_property(DEVICE, PRECISION_HINT))

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        key = Path(model).resolve()
        if key not in self._compiled:
            self._compiled[key] = self._core.compile_model(str(key), DEVICE, self.config)
        compiled = self._compiled[key]
        result = compiled([np.ascontiguousarray(batch)])
        return rows(result[compiled.output(0)], batch)

    def close(self) -> None:
        self._compiled.clear()


def _type_name(element_type: object) -> str:
    """OpenVINO's element type as the hint spells it (``<Type: 'bfloat16'>`` -> ``bf16``)."""
    text = str(getattr(element_type, "get_type_name", lambda: element_type)())
    return {"bfloat16": "bf16", "float32": "f32", "float16": "f16"}.get(text, text)
