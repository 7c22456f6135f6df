"""The web example (examples/web) in headless Chromium against Python onnxruntime.

The page is served on 127.0.0.1 (anan_onnx.conformance.web), loads the bundled model
converted by the CLI and its sidecar, is given an image through its file input, and the
numbers it shows are compared with ``anan_onnx.Session`` on the same image:

* an image already at the model's size (128x128 PNG): no resizing, so the page's input
  tensor must equal Python's bit for bit and the shown probabilities Python's (1e-5), on
  WASM and on both WebGPU implementations of onnxruntime-web;
* images that need resizing (a generated 200x150 PNG; a real 224x224 JPEG of the cats_dogs
  data when ../shared is present, else one written by Pillow): the page resizes like
  Pillow's bilinear filter (anan_web.js), so pixels differ by at most one level (PNG) or,
  for JPEG, by what Chromium's and Pillow's JPEG decoders differ (``JPEG_MAX_LEVELS``);
  the probabilities must equal Python's on the page's own input (1e-5) and Python's on its
  own preprocessing within ``RESIZED_PROB_TOLERANCE``.

Missing Playwright or Chromium fails (not skips) with the install command.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import anan_onnx
from anan_onnx.metadata import write_metadata
from anan_onnx.runtime.image_files import load_image, pixels_from_pil
from anan_onnx.sidecar import write_sidecar

pytestmark = pytest.mark.keras  # the bundled model is converted from Keras

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("ANAN_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL_IMAGE = SHARED_DATA / "cats_dogs" / "test" / "cats" / "cat_1.jpg"
CLASSES = ["cats", "dogs"]  # the training folders, sorted (class 1 = dogs)

TOLERANCE = 1e-5
#: JPEG decoding differs between Chromium and Pillow by at most this many levels per pixel
#: (measured: 1 on the cats_dogs images), the mean by far less.
JPEG_MAX_LEVELS = 2
#: pixels off by a level or two move the probability by far less than this
RESIZED_PROB_TOLERANCE = 5e-3


@pytest.fixture(scope="session")
def web_model(anan_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled ANAN model with class names recorded (anan.classes) and its sidecar."""
    model = onnx.load(str(anan_model))
    write_metadata(model, {"classes": json.dumps(CLASSES)})
    path = tmp_path_factory.mktemp("web") / "catsdogs.anan.onnx"
    onnx.save(model, path)
    write_sidecar(path)
    return path


def _noise(width: int, height: int, seed: int) -> np.ndarray:
    """Dark uniform noise, uint8 (H, W, 3): on such images the astrocytes move the bundled
    model's output a lot (0.98 -> 0.58 at 128x128), so a page that lost the modulation
    shows the base model's numbers and fails. (Smooth images barely move it.)"""
    return np.random.default_rng(seed).integers(0, 128, (height, width, 3), dtype=np.uint8)


def _save(pixels: np.ndarray, path: Path, **kwargs: object) -> Path:
    Image.fromarray(pixels).save(path, **kwargs)
    return path


def _page_arrays(result: dict, spec: anan_onnx.InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """The page's input tensor and its resized 8-bit pixels (H, W, C)."""
    x = np.frombuffer(base64.b64decode(result["input"]), np.float32).reshape(result["dims"])
    pixels = np.frombuffer(base64.b64decode(result["pixels"]), np.uint8)
    return x, pixels.reshape(spec.height, spec.width, spec.channels)


def _python_probs(model: Path, batch: np.ndarray) -> np.ndarray:
    p = float(anan_onnx.Session(model).predict(batch).ravel()[0])
    return np.array([1 - p, p])  # the sigmoid head as two class probabilities


def _base_of(anan_model: Path) -> Path:
    """The base model ``anan-onnx convert`` wrote beside the ANAN model (conftest.py)."""
    return anan_model.with_name(anan_model.name.replace(".anan.onnx", ".base.onnx"))


def _check_shown(result: dict, expected: np.ndarray, tolerance: float, base: np.ndarray) -> None:
    """The rows on the page: class names, the 6-decimal text and the full value; and the
    values are not the base model's (which the reference must differ from, first)."""
    names = [row[0] for row in result["shown"]]
    text = np.array([float(row[1]) for row in result["shown"]])
    values = np.array([row[2] for row in result["shown"]])
    assert np.abs(expected - base).max() > 1e-3, "the image does not exercise the astrocytes"
    assert np.abs(values - base).max() > TOLERANCE, "the page shows the base model's output"
    assert names == CLASSES
    assert all(len(row[1].split(".")[1]) == 6 for row in result["shown"])
    assert np.abs(values - expected).max() <= tolerance, (values, expected)
    assert np.abs(text - values).max() <= 5e-7  # the text is the value, rounded
    assert result["names"][int(np.argmax(values))] == CLASSES[int(np.argmax(expected))]


@pytest.mark.parametrize(
    ("backend", "build"),
    [("wasm", "default"), ("webgpu", "default"), ("webgpu", "webgpu")],
    ids=["wasm", "webgpu", "webgpu-ep"],
)
def test_image_at_model_size_matches_python(
    web_browser, anan_model: Path, web_model: Path, tmp_path: Path, backend: str, build: str
) -> None:
    """wasm and webgpu of the page's default onnxruntime-web build (?ort=default, JSEP for
    WebGPU), and the '/webgpu' build's native WebGPU execution provider (?ort=webgpu)."""
    image = _save(_noise(128, 128, seed=1), tmp_path / "at_size.png")
    result = web_browser.classify_image(web_model, image, backend, build=build)
    spec = anan_onnx.Session(web_model).input_spec()
    page_input, page_pixels = _page_arrays(result, spec)
    python_input = load_image(image, spec)[None]
    assert np.array_equal(page_pixels, np.asarray(Image.open(image)))
    assert np.array_equal(page_input, python_input)  # bit for bit: no resize, same arithmetic
    base = _python_probs(_base_of(anan_model), python_input)
    _check_shown(result, _python_probs(web_model, python_input), TOLERANCE, base)


def _resized_cases(folder: Path) -> dict[str, tuple[Path, int]]:
    """name -> (image file, largest allowed pixel difference from Pillow's preprocessing)."""
    png = _save(_noise(200, 150, seed=2), folder / "wide.png")
    if REAL_IMAGE.is_file():
        jpeg = folder / "real.jpg"
        shutil.copyfile(REAL_IMAGE, jpeg)  # a temporary copy: the data set stays read-only
    else:
        jpeg = _save(_noise(224, 224, seed=3), folder / "noise.jpg", quality=90)
    return {"png": (png, 1), "jpeg": (jpeg, JPEG_MAX_LEVELS)}


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_resized_image_matches_python(
    web_browser, anan_model: Path, web_model: Path, tmp_path: Path, kind: str
) -> None:
    image, max_levels = _resized_cases(tmp_path)[kind]
    result = web_browser.classify_image(web_model, image, "wasm")
    spec = anan_onnx.Session(web_model).input_spec()
    page_input, page_pixels = _page_arrays(result, spec)
    with Image.open(image) as im:
        python_pixels = pixels_from_pil(im, spec)
    levels = np.abs(page_pixels.astype(int) - python_pixels.astype(int))
    assert levels.max() <= max_levels, f"resize differs from Pillow by {levels.max()} levels"
    assert levels.mean() <= 0.1, f"mean difference {levels.mean():.3f} levels"
    # the page's numbers are exactly the model on the page's input ...
    base = _python_probs(_base_of(anan_model), page_input)
    _check_shown(result, _python_probs(web_model, page_input), TOLERANCE, base)
    # ... and close to the model on Python's own preprocessing of the file
    python_probs = _python_probs(web_model, load_image(image, spec)[None])
    assert np.abs(np.array(result["probs"]) - python_probs).max() <= RESIZED_PROB_TOLERANCE


def test_page_without_sidecar_says_how_to_write_it(
    web_browser, anan_model: Path, tmp_path: Path
) -> None:
    model = tmp_path / "lonely.anan.onnx"
    shutil.copyfile(anan_model, model)
    image = _save(_noise(128, 128, seed=4), tmp_path / "x.png")
    with pytest.raises(anan_onnx.AnanError, match=r"no sidecar at .*lonely\.anan\.json.*"):
        web_browser.classify_image(model, image, "wasm")
