"""INT8 static quantization (QDQ, per channel) of an ANAN model and of its base.

One calibration: onnxruntime measures the tensor ranges on the ANAN model (the model that
ships) and caches them; the base model is then quantized from the same cache. The tail of
both networks (everything after the boundary, see :mod:`anan_onnx.compress.exclusions`)
therefore gets identical scales, zero points and quantized weights.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from anan_onnx.compress.calibration import BatchReader
from anan_onnx.compress.options import CALIBRATION_METHODS
from anan_onnx.errors import AnanError, first_line

__all__ = ["METHOD", "quantize_pair"]

METHOD = "int8-qdq-per-channel"


def quantize_pair(
    anan: onnx.ModelProto,
    base: onnx.ModelProto,
    calibration: np.ndarray,
    anan_exclude: set[str],
    base_exclude: set[str],
    method: str = "minmax",
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """The ANAN and base models quantized with one set of ranges, calibrated by ``method``
    (one of :data:`CALIBRATION_METHODS`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIBRATION_METHODS:
        raise AnanError(
            f"unknown calibration method {method!r}: use one of {', '.join(CALIBRATION_METHODS)}"
        )
    calibrate = {m.name.lower(): m for m in CalibrationMethod}[method]

    input_name = _input_name(anan)
    dims = anan.graph.input[0].type.tensor_type.shape.dim
    fixed = dims[0].dim_value if dims and dims[0].HasField("dim_value") else None
    reader = BatchReader(input_name, calibration, fixed)
    options = dict(
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=calibrate,
    )
    with tempfile.TemporaryDirectory(prefix="anan-int8-") as tmp:
        cache = Path(tmp) / "ranges.json"
        out = [Path(tmp) / "anan.onnx", Path(tmp) / "base.onnx"]
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" noise
        try:
            quantize_static(  # on copies: it moves a proto's weights to external data
                _copy(anan), out[0], reader, calibration_cache_path=cache,
                nodes_to_exclude=sorted(anan_exclude), **options,
            )  # fmt: skip
            quantize_static(
                _copy(base), out[1], None, calibration_cache_path=cache,
                nodes_to_exclude=sorted(base_exclude), **options,
            )  # fmt: skip
        except AnanError:
            raise
        except Exception as exc:  # onnxruntime raises plain exceptions
            raise AnanError(
                f"onnxruntime could not quantize the model ({first_line(exc)}): "
                "try --fp16, or report the model"
            ) from None
        finally:
            logging.getLogger().setLevel(level)
        return onnx.load(str(out[0])), onnx.load(str(out[1]))


def _input_name(model: onnx.ModelProto) -> str:
    initializers = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.ModelProto.FromString(model.SerializeToString())
