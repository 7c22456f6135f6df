"""Per-channel, BGR preprocessing from image files, on every runtime that decodes images.

The model is a generated CNN converted to ANAN whose metadata and sidecar record ImageNet
``(pixel / 255 - mean) / std`` per channel on BGR input (conformance_cases.make_image_case).
Each image-reading runtime (the C++ program on PPM files; the Node.js program and the web
page, on each onnxruntime-web backend, on PNG files) must give the output of onnxruntime
Python on the tensor numpy computes from the spec,
``x[c] = pixel[bgr(c)] * scale[c] + offset[c]``, and that output must differ from the base
model's (the astrocytes are not dropped).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pytest

from anan_onnx.conformance import ImageRuntime, RuntimeUnavailable, open_runtime

from conformance_cases import MODULATED, TOLERANCE, ImageCase, make_image_case

RUNTIMES = {
    "cpp": pytest.mark.cpp,
    "node": pytest.mark.node,
    "web-wasm": pytest.mark.browser,
    "web-webgpu": pytest.mark.browser,
    "web-webgpu-ep": pytest.mark.browser,
}


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> ImageCase:
    return make_image_case(tmp_path_factory.mktemp("per_channel"))


@pytest.fixture(params=[pytest.param(n, marks=m) for n, m in RUNTIMES.items()])
def runtime(request: pytest.FixtureRequest) -> Iterator[ImageRuntime]:
    name = request.param
    browser = request.getfixturevalue("web_browser") if name.startswith("web-") else None
    try:
        engine = open_runtime(name, browser)
    except RuntimeUnavailable as exc:
        pytest.fail(f"{name}: {exc}")
    assert isinstance(engine, ImageRuntime)
    yield engine
    engine.close()


def test_case_tells_the_preprocessing_apart(case: ImageCase) -> None:
    """The check is not vacuous: the reference equals onnxruntime on the spec's tensor,
    the astrocytes change every image, and RGB order (BGR ignored) gives other outputs."""
    assert np.abs(case.expected - case.reference).max() <= TOLERANCE
    assert (np.abs(case.expected - case.base).max(axis=1) > MODULATED).all()
    session = ort.InferenceSession(str(case.path), providers=["CPUExecutionProvider"])
    rgb = case.pixels.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)
    wrong = session.run(None, {session.get_inputs()[0].name: rgb})[0]
    assert np.abs(wrong - case.expected).max() > MODULATED


def test_runtime_preprocesses_per_channel(runtime: ImageRuntime, case: ImageCase) -> None:
    images = case.ppm if runtime.name == "cpp" else case.png
    outputs = np.asarray(runtime.run_images(case.path, images), np.float64)
    assert outputs.shape == case.expected.shape
    assert np.isfinite(outputs).all()
    assert np.abs(outputs - case.expected).max() <= TOLERANCE, (outputs, case.expected)
    moved = np.abs(outputs - case.base).max(axis=1) > TOLERANCE
    assert moved.all(), f"{runtime.name} returns the base model's output: modulation dropped"
