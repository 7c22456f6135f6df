"""anan-onnx: astrocyte-modulated CNNs (ANAN) as standard ONNX graphs.

Convert a trained CNN (``convert_file``), run it with onnxruntime (``Session``), and check
it against the spec's literal per-image loop (``verify_models``, ``LiteralReference``).
Inference needs only numpy, onnxruntime and Pillow; TensorFlow is imported only when a
Keras model is converted. Names are loaded on first use (PEP 562), so that
``import anan_onnx`` followed by ``anan_onnx.Session(...)`` does not pay for the converter's
imports (onnx, onnx-ir) at start-up.

Example:
    >>> import anan_onnx
    >>> sess = anan_onnx.Session("out/model.anan.onnx")   # doctest: +SKIP
    >>> probs = sess.predict(batch)                        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> private module that defines it
_EXPORTS = {
    "Conversion": "_convert",
    "convert_file": "_convert",
    "convert_model": "_convert",
    "export_keras": "_convert",
    "load_base": "_convert",
    "Dataset": "_datasets",
    "Splits": "_datasets",
    "load_splits": "_datasets",
    "AnanError": "_errors",
    "Evaluation": "_evaluate",
    "evaluate": "_evaluate",
    "FastGrid": "_fastgrid",
    "GridPoint": "_fastgrid",
    "InputSpec": "_images",
    "check_batch": "_images",
    "load_image": "_images",
    "load_images": "_images",
    "load_npy": "_images",
    "read_metadata": "_metadata",
    "AnanParams": "_params",
    "LiteralReference": "_reference",
    "ReferenceResult": "_reference",
    "Session": "_runtime",
    "providers_for": "_runtime",
    "PAPER_GRID": "_tune",
    "Grid": "_tune",
    "TuneResult": "_tune",
    "grid_search": "_tune",
    "tune": "_tune",
    "VerifyReport": "_verify",
    "verify_models": "_verify",
}

__all__ = [
    "AnanError",
    "AnanParams",
    "Conversion",
    "Dataset",
    "Evaluation",
    "FastGrid",
    "Grid",
    "GridPoint",
    "InputSpec",
    "LiteralReference",
    "PAPER_GRID",
    "ReferenceResult",
    "Session",
    "Splits",
    "TuneResult",
    "VerifyReport",
    "__version__",
    "check_batch",
    "convert_file",
    "convert_model",
    "evaluate",
    "export_keras",
    "grid_search",
    "load_base",
    "load_image",
    "load_images",
    "load_npy",
    "load_splits",
    "providers_for",
    "read_metadata",
    "tune",
    "verify_models",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anan_onnx' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from ._convert import Conversion, convert_file, convert_model, export_keras, load_base
    from ._datasets import Dataset, Splits, load_splits
    from ._errors import AnanError
    from ._evaluate import Evaluation, evaluate
    from ._fastgrid import FastGrid, GridPoint
    from ._images import InputSpec, check_batch, load_image, load_images, load_npy
    from ._metadata import read_metadata
    from ._params import AnanParams
    from ._reference import LiteralReference, ReferenceResult
    from ._runtime import Session, providers_for
    from ._tune import PAPER_GRID, Grid, TuneResult, grid_search, tune
    from ._verify import VerifyReport, verify_models
