"""The same ANAN model on every runtime the project claims, side by side.

One module per runtime, each with a class whose ``run(model_path, batch) -> outputs``
returns the model's first output for a float32 batch (fed to its first input), one row
per image:

=============  =================================================================
name           runtime
=============  =================================================================
python-cpu     onnxruntime from Python, CPU (:mod:`.python_cpu`)
ort-format     the model converted to ``.ort`` (minimal builds), CPU (:mod:`.ort_format`)
node           onnxruntime-node via examples/node (:mod:`.node`)
cpp            the onnxruntime C++ API via examples/cpp (:mod:`.cpp`)
web-wasm       onnxruntime-web, WASM backend, headless Chromium (:mod:`.web`)
web-webgpu     onnxruntime-web, WebGPU backend of its default build (JSEP), on SwiftShader
web-webgpu-ep  onnxruntime-web/webgpu: the native WebGPU execution provider, on SwiftShader
onnx-reference ``onnx.reference.ReferenceEvaluator`` (the spec in numpy)
openvino-f32   OpenVINO CPU, precision pinned to float32 (its bf16 default is not exact)
tract          tract (Rust)
litert         LiteRT on onnx2tf's ``.tflite`` (a Python 3.12 environment of its own)
=============  =================================================================

The last four are :mod:`anan_onnx.runtime.engines` (what ``verify --engine`` runs), with
float32 pinned where the engine's default is lower.

Runtimes that decode image files themselves (``cpp``: PPM/PGM; the ``web-*`` runtimes: the
example page, any image the browser reads) also offer ``run_images(model, images)``: the
program preprocesses the files from the model's recorded preprocessing (metadata, or the
sidecar for the web page), per-channel scale/offset and channel order included
(:class:`ImageRuntime`). The others are fed tensors only.

The node, cpp and web runtimes build or install the examples of a source checkout; what
is missing is raised as :class:`RuntimeUnavailable` with the command that installs it.
The browser needs the ``browser`` extra (Playwright) and Debian's ``chromium``.

Example:
    >>> with Runtimes(["python-cpu", "web-webgpu"]) as runtimes:     # doctest: +SKIP
    ...     outputs = {r.name: r.run("model.anan.onnx", batch) for r in runtimes}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from anan_onnx.conformance._process import Closing, RuntimeUnavailable

__all__ = [
    "ENGINE_RUNTIMES",
    "RUNTIMES",
    "ImageRuntime",
    "Runtime",
    "RuntimeUnavailable",
    "Runtimes",
    "open_runtime",
]

RUNTIMES: tuple[str, ...] = (
    "python-cpu",
    "ort-format",
    "node",
    "cpp",
    "web-wasm",
    "web-webgpu",
    "web-webgpu-ep",
    "onnx-reference",
    "openvino-f32",
    "tract",
    "litert",
)

#: conformance runtime -> the engine of anan_onnx.runtime.engines it runs (float32 pinned)
ENGINE_RUNTIMES = {
    "onnx-reference": "reference",
    "openvino-f32": "openvino",
    "tract": "tract",
    "litert": "litert",
}


class Runtime(Protocol):
    """What every runtime offers."""

    name: str

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@runtime_checkable
class ImageRuntime(Runtime, Protocol):
    """A runtime that also reads image files and preprocesses them itself."""

    def run_images(self, model: str | Path, images: Sequence[str | Path]) -> np.ndarray: ...


def open_runtime(name: str, browser: object | None = None) -> Runtime:
    """Starts the runtime ``name`` (builds or installs what it needs on first use).

    ``browser``: a started :class:`.web.Browser` shared by the web-* runtimes.
    """
    if name == "python-cpu":
        from anan_onnx.conformance.python_cpu import PythonCpu

        return PythonCpu()
    if name == "ort-format":
        from anan_onnx.conformance.ort_format import OrtFormat

        return OrtFormat()
    if name == "node":
        from anan_onnx.conformance.node import Node

        return Node()
    if name == "cpp":
        from anan_onnx.conformance.cpp import Cpp

        return Cpp()
    if name in ENGINE_RUNTIMES:
        return _engine(name)
    web = {"web-wasm": "wasm", "web-webgpu": "webgpu", "web-webgpu-ep": "webgpu"}
    if name in web:
        from anan_onnx.conformance.web import Browser, WebRuntime

        if browser is None:
            raise ValueError("the web runtimes share a started Browser: pass browser=")
        assert isinstance(browser, Browser)
        return WebRuntime(browser, web[name], "webgpu" if name.endswith("-ep") else "default")
    raise ValueError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")


def _engine(name: str) -> Runtime:
    """The engine behind ``name``, named as the matrix names it."""
    from anan_onnx.runtime.engines import EngineUnavailable, open_engine

    try:
        engine = open_engine(ENGINE_RUNTIMES[name], precision="f32")
    except EngineUnavailable as exc:
        raise RuntimeUnavailable(str(exc)) from None
    engine.name = name
    return engine


class Runtimes(Closing):
    """Several runtimes started together (one browser for both web backends), closed together.

    A runtime that cannot start is left out and its one-line reason kept in ``unavailable``.
    """

    def __init__(self, names: Sequence[str] = RUNTIMES) -> None:
        self.unavailable: dict[str, str] = {}
        self.browser = None
        self._runtimes: list[Runtime] = []
        for name in names:
            try:
                if name.startswith("web-") and self.browser is None:
                    from anan_onnx.conformance.web import Browser

                    self.browser = Browser()
                self._runtimes.append(open_runtime(name, self.browser))
            except RuntimeUnavailable as exc:
                self.unavailable[name] = str(exc).splitlines()[0]

    def __iter__(self) -> Iterator[Runtime]:
        return iter(self._runtimes)

    def close(self) -> None:
        for runtime in self._runtimes:
            runtime.close()
        if self.browser is not None:
            self.browser.close()
