"""The ANAN model on inference engines other than onnxruntime, with a deployment's settings.

One module per engine, each with a class whose ``run(model_path, batch) -> outputs`` returns
the model's first output for a batch (float32, or the uint8 pixels of a ``--raw-input``
export; fed to its first input as it is), one row per image:

=============  ==================================================================  ==========
name           engine                                                              extra
=============  ==================================================================  ==========
``reference``  ``onnx.reference.ReferenceEvaluator``: the ONNX spec in numpy       (none)
``openvino``   OpenVINO on the CPU, its default precision unless one is pinned     openvino
``tract``      tract (Rust), through its Python package                            tract
``litert``     LiteRT (TensorFlow Lite) on a ``.tflite`` made by onnx2tf, in a     tools/
               Python 3.12 environment of its own (:mod:`.litert`)                 litert_venv.sh
=============  ==================================================================  ==========

``verify --engine NAME`` runs the model this way against the literal per-image loop; the
conformance matrix runs the same classes with the precision pinned to float32. An engine
that cannot start raises :class:`EngineUnavailable` with the command that installs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from anan_onnx.errors import AnanError

__all__ = ["ENGINES", "Engine", "EngineUnavailable", "open_engine"]

#: every engine ``verify --engine`` knows: onnxruntime (``ort``, the project's own) first
ENGINES: tuple[str, ...] = ("ort", "reference", "openvino", "tract", "litert")


class EngineUnavailable(AnanError):
    """An engine cannot run here (a package or its environment is missing); the message
    says the fix."""


class Engine(Protocol):
    """What every engine offers."""

    name: str

    @property
    def precision(self) -> str:
        """What it infers in: ``f32``, ``bf16`` ..."""

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def open_engine(name: str, *, precision: str | None = None) -> Engine:
    """Starts the engine ``name``.

    ``precision``: the inference precision to pin (``"f32"``) where the engine has a
    reduced-precision default (OpenVINO: bf16 on CPUs with AMX or AVX512-BF16); ``None``
    keeps the engine's default, as a deployment that sets nothing gets it.
    """
    if name not in ENGINES:
        raise AnanError(f"unknown engine {name!r}: pick one of {', '.join(ENGINES)}")
    if precision not in (None, "f32") and name != "openvino":
        raise AnanError(
            f"the {name} engine infers in float32 only: drop --engine-precision {precision}, "
            "or pass --engine openvino"
        )
    if name == "ort":
        from anan_onnx.runtime.engines.ort import Ort

        return Ort()
    if name == "reference":
        from anan_onnx.runtime.engines.onnx_reference import OnnxReference

        return OnnxReference()
    if name == "openvino":
        from anan_onnx.runtime.engines.openvino import OpenVino

        return OpenVino(precision)
    if name == "tract":
        from anan_onnx.runtime.engines.tract import Tract

        return Tract()
    from anan_onnx.runtime.engines.litert import LiteRT

    return LiteRT()


def rows(output: object, batch: np.ndarray) -> np.ndarray:
    """An engine's first output as float32 rows, one per image of ``batch``."""
    return np.asarray(output, np.float32).reshape(len(batch), -1)


def import_extra(module: str, extra: str) -> object:
    """``import module``, or :class:`EngineUnavailable` naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        from anan_onnx.install_hint import install_hint

        raise EngineUnavailable(
            f"the {extra} engine needs the {module} package: {install_hint(extra)}"
        ) from None
