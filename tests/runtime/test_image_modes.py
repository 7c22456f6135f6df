"""Every image mode reaches the model as its 8-bit rendering would, or is refused by name.

Each picture is saved as an 8-bit twin and in a deeper or odder mode; both must give the
same model input (anan_onnx.runtime.image_files.eight_bit). Before, Pillow's convert
clipped 16-bit and float samples at 255 and a 16-bit PNG read as almost white.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anan_onnx.errors import AnanError
from anan_onnx.runtime.image_files import iter_image_batches, load_image, pixels_from_pil
from anan_onnx.runtime.inputs import InputSpec

GRAY = InputSpec("NHWC", 12, 10, 1)
RGB = InputSpec("NHWC", 12, 10, 3)
SPECS = {"gray": GRAY, "rgb": RGB}


@pytest.fixture
def picture() -> np.ndarray:
    """An 8-bit gray picture with every level from dark to bright (mean near 0.5)."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (16, 13), dtype=np.uint8)


def _twin(tmp_path, picture):
    path = tmp_path / "twin8.png"
    Image.fromarray(picture).save(path)
    return path


DEEP = {
    "png16_x257": lambda p: (Image.fromarray(p.astype(np.uint16) * 257), "png"),
    "png16_shift8": lambda p: (Image.fromarray(p.astype(np.uint16) << 8), "png"),
    "tiff16": lambda p: (Image.fromarray(p.astype(np.uint16) * 257), "tif"),
    "tiff_int32_x257": lambda p: (Image.fromarray(p.astype(np.int32) * 257), "tif"),
    "tiff_int32_8bit": lambda p: (Image.fromarray(p.astype(np.int32)), "tif"),
    "tiff_float_unit": lambda p: (Image.fromarray(p.astype(np.float32) / 255), "tif"),
    "tiff_float_255": lambda p: (Image.fromarray(p.astype(np.float32)), "tif"),
}


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize("kind", list(DEEP))
def test_deep_images_equal_their_8bit_twin(tmp_path, picture, kind, spec_name):
    spec = SPECS[spec_name]
    image, ext = DEEP[kind](picture)
    path = tmp_path / f"deep.{ext}"
    image.save(path)
    assert Image.open(path).mode in ("I;16", "I", "F")  # really a deep mode on disk
    expected = load_image(_twin(tmp_path, picture), spec)
    got = load_image(path, spec)
    np.testing.assert_array_equal(got, expected)
    assert abs(float(got.mean()) - picture.mean() / 255) < 0.02  # not "almost white"


def test_pgm16_equals_its_8bit_twin(tmp_path, picture):
    h, w = picture.shape
    path = tmp_path / "deep.pgm"
    path.write_bytes(f"P5 {w} {h} 65535\n".encode() + (picture.astype(">u2") * 257).tobytes())
    np.testing.assert_array_equal(
        load_image(path, GRAY), load_image(_twin(tmp_path, picture), GRAY)
    )


def test_16bit_rgb_png_equals_its_8bit_twin(tmp_path):
    import struct
    import zlib

    rgb = np.random.default_rng(3).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    rows = b"".join(b"\x00" + (rgb[y].astype(">u2") * 257).tobytes() for y in range(9))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 9, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    (tmp_path / "rgb16.png").write_bytes(png)
    Image.fromarray(rgb).save(tmp_path / "rgb8.png")
    np.testing.assert_array_equal(
        load_image(tmp_path / "rgb16.png", RGB), load_image(tmp_path / "rgb8.png", RGB)
    )


EIGHT_BIT = ["1", "L", "P", "LA", "PA", "RGBA", "CMYK", "YCbCr", "HSV", "La", "RGBa"]


@pytest.mark.parametrize("mode", EIGHT_BIT)
def test_8bit_modes_load_like_pillow_renders_them(tmp_path, mode):
    rng = np.random.default_rng(5)
    rgb = Image.fromarray(rng.integers(0, 256, (16, 13, 3), dtype=np.uint8))
    if mode == "La":
        image = Image.merge("La", rgb.convert("LA").split())
    elif mode == "PA":
        image = rgb.convert("P").convert("PA")
    else:
        image = rgb.convert(mode)
    reference = image.convert("LA") if mode == "La" else image
    for spec in SPECS.values():
        want = reference.convert("RGB" if spec.channels == 3 else "L")
        want = want.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
        expected = np.asarray(want, np.uint8).reshape(spec.height, spec.width, -1)
        np.testing.assert_array_equal(pixels_from_pil(image, spec), expected)
        try:  # and through a file, where a format can hold the mode
            image.save(tmp_path / "img.tif")
        except (OSError, KeyError):
            continue
        np.testing.assert_allclose(
            load_image(tmp_path / "img.tif", spec), expected / np.float32(255), atol=1e-7
        )


@pytest.mark.parametrize(
    "values",
    [
        np.full((8, 8), -20.0, np.float32),
        np.full((8, 8), np.nan, np.float32),
        np.full((8, 8), 1e6, np.float32),
        np.full((8, 8), -5, np.int32),
        np.full((8, 8), 10**7, np.int32),
    ],
    ids=["negative_float", "nan_float", "float_beyond_16bit", "negative_int", "int_beyond_16bit"],
)
def test_samples_without_an_8bit_rendering_are_refused_by_mode(tmp_path, values):
    path = tmp_path / "odd.tif"
    Image.fromarray(values).save(path)
    mode = Image.open(path).mode
    with pytest.raises(AnanError, match=rf"image .*odd\.tif has mode {mode} with "):
        load_image(path, GRAY)


def test_lab_is_refused_by_mode(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8), "LAB").save(tmp_path / "lab.tif")
    with pytest.raises(AnanError, match="has mode LAB, which anan-onnx cannot render"):
        load_image(tmp_path / "lab.tif", RGB)


def test_iter_image_batches_streams_in_order(tmp_path, picture):
    paths = []
    for i in range(7):
        Image.fromarray(np.roll(picture, i)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.insert(3, tmp_path / "bad.png")
    batches = list(iter_image_batches(iter(paths), GRAY, batch_size=3, on_error="skip"))
    assert [len(b.names) for b in batches] == [3, 3, 1]
    assert [n for b in batches for n in b.names] == [str(p) for p in paths if p.stem != "bad"]
    assert [s for b in batches for s, _ in b.skipped] == [str(tmp_path / "bad.png")]
    whole = np.concatenate([b.x for b in batches])
    each = np.stack([load_image(p, GRAY) for p in paths if p.stem != "bad"])
    np.testing.assert_array_equal(whole, each)
    with pytest.raises(AnanError, match="bad.png is not a readable image"):
        list(iter_image_batches(paths, GRAY, batch_size=3))


def test_float_overshoot_of_a_filter_keeps_the_unit_range(tmp_path, picture):
    values = picture.astype(np.float32) / 255
    values[0, 0], values[0, 1] = 1.03, -0.02  # what a sharpening filter leaves behind
    Image.fromarray(values).save(tmp_path / "over.tif")
    expected = picture.copy()
    expected[0, 0], expected[0, 1] = 255, 0
    Image.fromarray(expected).save(tmp_path / "twin.png")
    np.testing.assert_array_equal(
        load_image(tmp_path / "over.tif", GRAY), load_image(tmp_path / "twin.png", GRAY)
    )
