"""What each export target does, as data: the batch it fixes and the files it writes.

============  ======================  =========  ===============================
target        batch                   ``.ort``   extra
============  ======================  =========  ===============================
``web``       the model's (``--batch``)  no      (onnxruntime-web loads ``.onnx``)
``mobile``    1 (``--batch``)         Runtime    NNAPI/CoreML usability summary
``ort``       the model's (``--batch``)  Fixed   minimal-build operator config
``openvino``  the model's (``--batch``)  no      OpenVINO IR ``.xml``/``.bin`` (compile: f32)
``litert``    1 (``--batch``)         no      ``.tflite`` (onnx2tf, float32)
============  ======================  =========  ===============================

Every target simplifies (``--simplifier``), records what it changed in the ``anan.export_*``
metadata, writes the sidecar ``MODEL.anan.json`` and is checked exact before any file
lands.
"""

from __future__ import annotations

import dataclasses

__all__ = ["TARGETS", "Target"]


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    default_batch: int | None  # None: keep the model's batch axis
    ort: bool  # write the .ort file and the operator config
    runtime_optimizations: bool  # .ort optimisation style Runtime (else Fixed)
    mobile_summary: bool
    purpose: str
    engine: str | None = None  # the engine artefact it writes (export/engine_files.py)


TARGETS = {
    t.name: t
    for t in (
        Target("web", None, False, False, False, "onnxruntime-web (WASM, WebGPU)"),
        Target("mobile", 1, True, True, True, "onnxruntime mobile (NNAPI, CoreML, CPU)"),
        Target("ort", None, True, False, False, "a minimal onnxruntime build (ORT format)"),
        Target("openvino", None, False, False, False, "OpenVINO (IR, float32)", "openvino"),
        Target("litert", 1, False, False, False, "LiteRT / TensorFlow Lite (.tflite)", "litert"),
    )
}
