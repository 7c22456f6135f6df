"""Export an ANAN model for a deployment target: ``web``, ``mobile`` or ``ort``.

``anan-onnx export MODEL.anan.onnx --target web|mobile|ort`` (``anan_onnx.cli.export``) is
:func:`export_model`: fix the batch where the target needs static shapes, simplify, write
the model, the sidecar ``MODEL.anan.json`` and (ort, mobile) the ``.ort`` file with the
operator config of a minimal onnxruntime build, check everything exact against the input
model, and only then move the files into place. Needs onnx and onnxruntime (and optionally
onnxsim / onnxslim), never TensorFlow.
"""

from anan_onnx.export.pipeline import ExportResult, export_model
from anan_onnx.export.simplify import SIMPLIFIERS
from anan_onnx.export.targets import TARGETS

__all__ = ["SIMPLIFIERS", "TARGETS", "ExportResult", "export_model"]
