"""The artefacts of the engine targets: OpenVINO IR (``--target openvino``) and LiteRT's
``.tflite`` (``--target litert``), each made from the exported ``.onnx``.

OpenVINO's CPU plugin infers in bf16 by default on CPUs with AMX or AVX512-BF16, which is not
exact for ANAN models (docs/engines.md). The IR records ``runtime_options/
INFERENCE_PRECISION_HINT = f32``, but the CPU plugin does not apply that key by itself, and
marking every operation *precise* (``DisableFP16Compression``) still left 5e-4 errors on a
model with a MaxPool after the target (OpenVINO 2026.4): the application must compile with
``{"INFERENCE_PRECISION_HINT": "f32"}``, and the export's check runs the IR so. Weights are
stored in float32 (``compress_to_fp16=False``; OpenVINO's default would halve them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anan_onnx.runtime.engines import import_extra

__all__ = ["to_openvino_ir", "to_tflite"]

def to_openvino_ir(onnx_path: Path) -> list[Path]:
    """``MODEL.xml`` and ``MODEL.bin`` beside ``onnx_path``, float32 weights, the float32
    hint recorded."""
    ov: Any = import_extra("openvino", "openvino")
    model = ov.convert_model(str(onnx_path))
    model.set_rt_info("f32", ["runtime_options", "INFERENCE_PRECISION_HINT"])
    xml = onnx_path.with_suffix(".xml")
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return [xml, xml.with_suffix(".bin")]


def to_tflite(onnx_path: Path) -> list[Path]:
    """``MODEL.tflite`` beside ``onnx_path``: onnx2tf's float32 model (its defaults)."""
    from anan_onnx.runtime.engines.litert import LiteRT

    runner = LiteRT()
    try:
        return [runner.tflite(onnx_path, onnx_path.with_suffix(".tflite"))]
    finally:
        runner.close()
