"""examples/node/anan_infer.mjs on image files: decoded by pngjs/jpeg-js, preprocessed from
the model's sidecar by the web page's examples/web/preprocess.js.

The model is the generated per-channel BGR ANAN model of conformance_cases (its sidecar
records ImageNet scale/offset per channel). Python's side is anan-onnx's own loader
(``load_image``, Pillow) on the same file, fed to onnxruntime:

* a PNG, an 8-bit one or a 16-bit one (Pillow keeps the high byte), with an EXIF
  Orientation tag or not, gives Python's output within 1e-5, and not the base model's;
* a JPEG is decoded by jpeg-js, not libjpeg: its pixels may differ by a few levels
  (docs/deployment.md), so the output is close to Python's, not equal;
* no sidecar, a sidecar without preprocessing, a too large image (refused from its header,
  nothing decoded), a non-image among images: one line on stderr, exit status 2.
"""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from anan_onnx.conformance.node import infer
from anan_onnx.runtime.image_files import MAX_IMAGE_PIXELS, load_image
from anan_onnx.runtime.session import Session
from anan_onnx.sidecar import sidecar_path

from conformance_cases import MODULATED, TOLERANCE, ImageCase, make_image_case

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> ImageCase:
    return make_image_case(tmp_path_factory.mktemp("node_images"))


def _python(case: ImageCase, files: list[Path]) -> np.ndarray:
    """anan-onnx's Python preprocessing of ``files`` (Pillow), run by onnxruntime."""
    spec = Session(case.path).input_spec()
    assert spec is not None
    x = np.stack([load_image(f, spec) for f in files]).transpose(0, 3, 1, 2)  # NCHW model
    session = ort.InferenceSession(str(case.path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
    return np.asarray(out, np.float64).reshape(len(files), -1)


def _node(node: str, model: Path, *files: Path) -> np.ndarray:
    proc = infer(node, "--json", "-q", model, *files)
    assert proc.returncode == 0, proc.stderr
    return np.asarray(json.loads(proc.stdout), np.float64)


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one-line error; asserts exit status 2 and nothing on stdout."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anan_infer: error: "), proc.stderr
    assert proc.stdout == ""
    return lines[0]


def _rotated_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    return exif


def test_png_equals_python(node: str, case: ImageCase, tmp_path: Path) -> None:
    """8-bit PNGs, one with an EXIF Orientation tag (ignored, as Pillow ignores it), and a
    16-bit PNG of the same pixels (v * 256 + 255: Python keeps the high byte, where
    rounding v16 * 255 / 65535 would give v + 1 for v < 127)."""
    tagged = tmp_path / "tagged.png"
    Image.fromarray(case.pixels[0], "RGB").save(tagged, exif=_rotated_exif())
    assert Image.open(tagged).getexif()[0x0112] == 6
    deep = tmp_path / "deep.png"
    _save_png16(deep, case.pixels[1].astype(np.uint16) * 256 + 255)
    files = [*case.png, tagged, deep]
    python = _python(case, files)
    assert np.abs(python[: len(case.png)] - case.expected).max() <= TOLERANCE
    outputs = _node(node, case.path, *files)
    assert outputs.shape == python.shape
    assert np.abs(outputs - python).max() <= TOLERANCE, (outputs, python)
    base = np.concatenate([case.base, case.base[:2]])
    assert (np.abs(outputs - base).max(axis=1) > MODULATED).all()


def _save_png16(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit RGB PNG (Pillow cannot write one): IHDR, one IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    height, width, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_jpeg_is_close_to_python(node: str, case: ImageCase, tmp_path: Path) -> None:
    """jpeg-js is not libjpeg: the output is near Python's (a few levels of 255 per pixel),
    EXIF orientation ignored, and still the ANAN model's, not the base model's."""
    files = []
    for i, pixels in enumerate(case.pixels):
        files.append(tmp_path / f"image{i}.jpg")
        exif = _rotated_exif() if i == 0 else Image.Exif()
        Image.fromarray(pixels, "RGB").save(files[-1], quality=95, subsampling=0, exif=exif)
    python = _python(case, files)
    outputs = _node(node, case.path, *files)
    assert np.isfinite(outputs).all()
    # one level is 1/(255 * std) ~ 0.017 of input; measured: at most 2.8e-4 here
    assert np.abs(outputs - python).max() <= 5e-3, (outputs, python)
    assert (np.abs(outputs - case.base).max(axis=1) > MODULATED).all()


def test_images_need_the_sidecar(node: str, case: ImageCase, tmp_path: Path) -> None:
    model = tmp_path / "copy.anan.onnx"
    model.write_bytes(case.path.read_bytes())
    message = _error(infer(node, model, case.png[0]))
    assert "no sidecar" in message and f"anan-onnx export {model} --target web" in message
    sidecar = json.loads(sidecar_path(case.path).read_text())
    sidecar_path(model).write_text(json.dumps({**sidecar, "preprocess": None}))
    message = _error(infer(node, model, case.png[0]))
    assert "records no preprocessing" in message and "--target web" in message
    # a .npy batch needs no sidecar
    npy = tmp_path / "batch.npy"
    np.save(npy, np.zeros((1, 3, 11, 11), np.float32))
    assert infer(node, "-q", model, npy).returncode == 0


def test_refusals(node: str, case: ImageCase, tmp_path: Path) -> None:
    side = int(MAX_IMAGE_PIXELS**0.5) + 1
    huge = tmp_path / "huge.png"  # a header only: refused before any decoding
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + b"\0" * 4)
    assert f"too large ({side}x{side})" in _error(infer(node, case.path, huge))
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    assert "is neither a PNG nor a JPEG" in _error(infer(node, case.path, case.png[0], text))
    cut = tmp_path / "cut.png"
    cut.write_bytes(case.png[0].read_bytes()[:60])
    assert "cannot be decoded as PNG" in _error(infer(node, case.path, cut))
