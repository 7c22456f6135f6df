"""Edge compression of ANAN models: INT8 (static QDQ, per channel) and FP16.

The astrocyte subgraph (every ``anan/*`` node) and everything that feeds it stay float32 by
default, so that the astrocytes' sign tests, counters and gains are computed exactly as in
the FP32 model; only the rest of the network is compressed. Each compressed ANAN model is
written with a *compressed base*: the FP32 base model compressed with the same tensor
ranges and the same exclusions, so that it differs from the compressed ANAN model only by
the astrocyte subgraph, and ``verify`` can hold the astrocytes' output to 1e-5 against the
literal loop run on it (:mod:`anan_onnx.reference.compressed`).

The names below load lazily, so that the CLI can read :mod:`anan_onnx.compress.options`
without importing onnx and onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anan_onnx.compress.pipeline import CompressResult, compress_file

__all__ = ["CompressResult", "compress_file"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from anan_onnx.compress import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'anan_onnx.compress' has no attribute {name!r}")
