"""The web example page (examples/web) on what Python decides about image files.

No TensorFlow: the models are generated. Checked in headless Chromium (the ``browser``
marker; Playwright and Debian's chromium, see anan_onnx.conformance.web):

* EXIF orientation is ignored, as anan-onnx in Python (Pillow, Keras' load_img) ignores
  it: a photo whose Orientation tag says "rotate 90°" gives the page the stored pixels,
  the same as ``pixels_from_pil`` (Chromium itself would rotate them, whatever
  ``imageOrientation`` asks);
* an image beyond MAX_IMAGE_PIXELS is refused, as in Python;
* a NaN output is an error message, never "Prediction: undefined (NaN%)";
* a sidecar asking for a resize the page does not reproduce is refused.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anan_onnx.errors import AnanError
from anan_onnx.runtime.image_files import MAX_IMAGE_PIXELS, pixels_from_pil
from anan_onnx.runtime.inputs import InputSpec

from conformance_cases import (
    IMAGE_SIZE,
    make_image_case,
    non_finite_model,
    write_preprocess_sidecar,
)

pytestmark = pytest.mark.browser

#: the page's preprocessing of a plain RGB model of the per-channel case's size
PLAIN = {"layout": "NCHW", "height": str(IMAGE_SIZE), "width": str(IMAGE_SIZE), "channels": "3",
         "scale": repr(1 / 255), "offset": "0.0"}  # fmt: skip


@pytest.fixture(scope="module")
def per_channel(tmp_path_factory: pytest.TempPathFactory):
    return make_image_case(tmp_path_factory.mktemp("per_channel"))


def _page_pixels(result: dict) -> np.ndarray:
    pixels = np.frombuffer(base64.b64decode(result["pixels"]), np.uint8)
    return pixels.reshape(IMAGE_SIZE, IMAGE_SIZE, 3)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_exif_orientation_is_ignored(web_browser, per_channel, tmp_path: Path, fmt: str) -> None:
    """Orientation 6 on a 2:1 image: rotated, it would be 1:2 and resize differently."""
    rng = np.random.default_rng(9)
    stored = rng.integers(0, 256, (IMAGE_SIZE, 2 * IMAGE_SIZE, 3), np.uint8)
    stored[:, : IMAGE_SIZE] //= 4  # a dark left half: a rotation moves it to the top
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / f"rotated.{'jpg' if fmt == 'jpeg' else 'png'}"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    result = web_browser.classify_image(per_channel.path, path, "wasm")
    with Image.open(path) as im:
        assert im.getexif()[0x0112] == 6
        python = pixels_from_pil(im, InputSpec("NCHW", IMAGE_SIZE, IMAGE_SIZE, 3))
    levels = np.abs(_page_pixels(result).astype(int) - python.astype(int))
    assert levels.max() <= (2 if fmt == "jpeg" else 1), levels.max()
    assert levels.mean() <= 0.2


def test_too_large_image_is_refused(web_browser, per_channel, tmp_path: Path) -> None:
    side = int(MAX_IMAGE_PIXELS**0.5) + 1  # 9460 x 9460: just over the limit, ~90 KB as PNG
    path = tmp_path / "huge.png"
    Image.new("L", (side, side)).save(path)
    with pytest.raises(AnanError, match=rf"too large \({side}x{side} pixels\)"):
        web_browser.classify_image(per_channel.path, path, "wasm")


def test_nan_output_is_no_prediction(web_browser, per_channel, tmp_path: Path) -> None:
    model = non_finite_model(tmp_path / "nan.onnx", IMAGE_SIZE)
    write_preprocess_sidecar(model, PLAIN)
    with pytest.raises(AnanError, match=r"output 0 is (NaN|Infinity|-Infinity) \(not a finite"):
        web_browser.classify_image(model, per_channel.png[0], "wasm")


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"resize": "nearest"}, 'resize "nearest" is not supported'),
        ({"aspect": "crop"}, 'aspect "crop" is not supported'),
        ({"channel_order": "GBR"}, 'channel_order "GBR" is neither RGB nor BGR'),
        ({"scale": "0.1,0.2"}, "scale has 2 values but the model has 3 channels"),
    ],
)
def test_preprocessing_the_page_cannot_honour_is_refused(
    web_browser, per_channel, tmp_path: Path, changes: dict[str, str], needle: str
) -> None:
    model = tmp_path / "changed.anan.onnx"
    model.write_bytes(per_channel.path.read_bytes())
    write_preprocess_sidecar(model, {**PLAIN, **changes})
    with pytest.raises(AnanError, match=json.dumps(needle)[1:-1].replace("(", r"\(")):
        web_browser.classify_image(model, per_channel.png[0], "wasm")
