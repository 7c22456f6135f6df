"""anan-onnx: astrocyte-modulated CNNs (ANAN) as standard ONNX graphs.

Convert a trained CNN (``convert_file``), run it with onnxruntime (``Session``), and check
it against the algorithm's literal per-image loop (``verify_models``, ``LiteralReference``).
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

from anan_onnx._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "ConvertResult": "convert.pipeline",
    "convert_file": "convert.pipeline",
    "convert_model": "convert.pipeline",
    "keras_to_onnx": "convert.pipeline",
    "load_base": "convert.pipeline",
    "Dataset": "evaluation.datasets",
    "Splits": "evaluation.datasets",
    "load_splits": "evaluation.datasets",
    "AnanError": "errors",
    "Evaluation": "evaluation.results",
    "evaluate": "evaluation.evaluate",
    "FastGrid": "evaluation.fastgrid",
    "GridPoint": "evaluation.fastgrid",
    "InputSpec": "runtime.inputs",
    "check_batch": "runtime.inputs",
    "load_image": "runtime.image_files",
    "load_images": "runtime.image_files",
    "load_npy": "runtime.npy",
    "read_metadata": "metadata",
    "AnanParams": "params",
    "ConvertOptions": "options",
    "RunOptions": "options",
    "SplitOptions": "options",
    "LiteralReference": "reference.literal",
    "ReferenceResult": "reference.literal",
    "Session": "runtime.session",
    "providers_for": "runtime.session",
    "PAPER_GRID": "evaluation.grid",
    "Grid": "evaluation.grid",
    "TuneResult": "evaluation.tune_result",
    "grid_search": "evaluation.tune",
    "tune": "evaluation.tune",
    "VerifyReport": "reference.verify",
    "verify_models": "reference.verify",
    "CompressResult": "compress.pipeline",
    "compress_file": "compress.pipeline",
    "CompressedVerifyReport": "reference.compressed",
    "verify_compressed_models": "reference.compressed",
}

__all__ = [
    "AnanError",
    "AnanParams",
    "CompressResult",
    "CompressedVerifyReport",
    "ConvertOptions",
    "ConvertResult",
    "Dataset",
    "Evaluation",
    "FastGrid",
    "Grid",
    "GridPoint",
    "InputSpec",
    "LiteralReference",
    "PAPER_GRID",
    "ReferenceResult",
    "RunOptions",
    "Session",
    "SplitOptions",
    "Splits",
    "TuneResult",
    "VerifyReport",
    "__version__",
    "check_batch",
    "compress_file",
    "convert_file",
    "convert_model",
    "evaluate",
    "keras_to_onnx",
    "grid_search",
    "load_base",
    "load_image",
    "load_images",
    "load_npy",
    "load_splits",
    "providers_for",
    "read_metadata",
    "tune",
    "verify_compressed_models",
    "verify_models",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anan_onnx' has no attribute {name!r}")
    # Public classes and functions already report ``anan_onnx`` as their module, from
    # import time (anan_onnx._public), so nothing is changed here.
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from anan_onnx.convert.pipeline import (
        ConvertResult,
        convert_file,
        convert_model,
        keras_to_onnx,
        load_base,
    )
    from anan_onnx.errors import AnanError
    from anan_onnx.evaluation.datasets import Dataset, Splits, load_splits
    from anan_onnx.evaluation.evaluate import evaluate
    from anan_onnx.evaluation.fastgrid import FastGrid, GridPoint
    from anan_onnx.evaluation.grid import PAPER_GRID, Grid
    from anan_onnx.evaluation.results import Evaluation
    from anan_onnx.evaluation.tune import grid_search, tune
    from anan_onnx.evaluation.tune_result import TuneResult
    from anan_onnx.metadata import read_metadata
    from anan_onnx.options import ConvertOptions, RunOptions, SplitOptions
    from anan_onnx.params import AnanParams
    from anan_onnx.reference.literal import LiteralReference, ReferenceResult
    from anan_onnx.reference.verify import VerifyReport, verify_models
    from anan_onnx.runtime.image_files import load_image, load_images
    from anan_onnx.runtime.inputs import InputSpec, check_batch
    from anan_onnx.runtime.npy import load_npy
    from anan_onnx.runtime.session import Session, providers_for
