"""Helpers shared by the tests that build or install something outside Python.

They live in anan_onnx.conformance._process, where the conformance runtimes (which build
the C++ example and install the Node.js and web examples) use them too.
"""

from __future__ import annotations

from anan_onnx.conformance._process import locked, tail

__all__ = ["locked", "tail"]
