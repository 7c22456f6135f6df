"""anan-onnx: astrocyte-modulated CNNs (ANAN) as standard ONNX graphs.

Convert a trained CNN (``convert_file``), run it with onnxruntime (``Session``), and check
it against the spec's literal per-image loop (``verify_models``, ``LiteralReference``).
Importing this package needs only numpy, onnx, onnx-ir and onnxruntime; TensorFlow is
imported only when a Keras model is converted.

Example:
    >>> import anan_onnx
    >>> sess = anan_onnx.Session("out/model.anan.onnx")   # doctest: +SKIP
    >>> probs = sess.predict(batch)                        # doctest: +SKIP
"""

from __future__ import annotations

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

__version__ = "0.1.0"

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
