"""Engine: tract (Sonos' Rust inference engine), through its Python package.

tract unifies every shape hint of the graph (``value_info``) with its inputs and refuses
what does not unify: a stale batch symbol (the converter keeps the hints consistent,
:func:`anan_onnx.model_io.rename_dim`), and also a symbolic batch in the hints once the
input is given a concrete size. A deployment gives tract the concrete input shape
(``tract -i 1,128,128,3,f32``; tf2onnx's ``Shape -> Gather -> Concat -> Reshape`` on a
symbolic batch does not type otherwise), so this engine runs a copy of the model with its
batch fixed to the batch's size in the input, outputs and hints alike, as
``anan-onnx export --batch N`` writes it. It infers in float32.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from anan_onnx.model_io import rename_dim
from anan_onnx.runtime.engines import import_extra, rows

__all__ = ["Tract"]

#: numpy dtype (``dtype.str`` without the byte order) -> tract's fact type
_FACT_TYPES = {"f4": "f32", "u1": "u8"}


class Tract:
    """tract, optimised for the CPU; each model is loaded once per batch shape."""

    name = "tract"
    precision = "f32"

    def __init__(self) -> None:
        self._tract: Any = import_extra("tract", "tract")
        self._loaded: dict[tuple[Path, tuple[int, ...]], Any] = {}

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        key = (Path(model).resolve(), tuple(batch.shape))
        if key not in self._loaded:
            self._loaded[key] = self._load(
                key[0], tuple(batch.shape), _FACT_TYPES[batch.dtype.str[1:]]
            )
        output = self._loaded[key].run([np.ascontiguousarray(batch)])[0]
        return rows(output.to_numpy(), batch)

    def close(self) -> None:
        self._loaded.clear()

    def _load(self, path: Path, shape: tuple[int, ...], kind: str) -> Any:
        proto = onnx.load(path)
        initialized = {i.name for i in proto.graph.initializer}
        first = next(v for v in proto.graph.input if v.name not in initialized)
        symbol = first.type.tensor_type.shape.dim[0].dim_param
        if symbol:
            rename_dim(proto, symbol, shape[0])
        with tempfile.TemporaryDirectory(prefix="anan_tract_") as work:
            fixed = Path(work) / path.name
            onnx.save(proto, fixed)
            inference = self._tract.onnx().load(str(fixed))
        inference.set_input_fact(0, ",".join(map(str, shape)) + f",{kind}")
        return inference.into_model().into_runnable()
