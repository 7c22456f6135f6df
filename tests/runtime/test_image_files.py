"""Tests of anan_onnx.runtime.image_files: image files to model input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anan_onnx.errors import AnanError
from anan_onnx.runtime.image_files import load_image, load_images
from anan_onnx.runtime.inputs import InputSpec

NHWC = InputSpec("NHWC", 8, 6, 3)
NCHW = InputSpec("NCHW", 8, 6, 3)


def save(path, array: np.ndarray, **kwargs) -> str:
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


# --- image files --------------------------------------------------------------------------


def test_load_image_scales_without_resizing(tmp_path):
    pixels = np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3)
    x = load_image(save(tmp_path / "a.png", pixels), InputSpec("NHWC", 8, 6, 3, 0.5, -1.0))
    assert x.dtype == np.float32 and x.shape == (8, 6, 3)
    np.testing.assert_array_equal(x, pixels.astype(np.float32) * 0.5 - 1.0)


def test_load_image_resizes_bilinear_and_converts_to_gray(tmp_path):
    path = save(tmp_path / "big.png", solid(40, 30, (200, 100, 50)))
    x = load_image(path, InputSpec("NHWC", 8, 6, 1, scale=1.0))
    assert x.shape == (8, 6, 1)
    # Pillow's L conversion: L = R*299/1000 + G*587/1000 + B*114/1000 = 124.2 → 124.
    np.testing.assert_allclose(x, 124.0, atol=1)
    y = load_image(path, NHWC)
    assert y.shape == (8, 6, 3)
    np.testing.assert_allclose(y[0, 0], np.array([200, 100, 50]) / 255, atol=1e-6)


def test_load_image_converts_gray_and_rgba_to_rgb(tmp_path):
    gray = save(tmp_path / "g.png", np.full((8, 6), 77, np.uint8))
    np.testing.assert_allclose(load_image(gray, NHWC), 77 / 255, atol=1e-7)
    rgba = np.zeros((8, 6, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    x = load_image(save(tmp_path / "t.png", rgba), NHWC)
    np.testing.assert_allclose(x[..., 0], 1.0)
    np.testing.assert_allclose(x[..., 1:], 0.0)


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(AnanError, match=r"image .*nope\.png does not exist"):
        load_image(tmp_path / "nope.png", NHWC)
    with pytest.raises(AnanError, match="is a directory, not a regular file"):
        load_image(tmp_path, NHWC)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all")
    with pytest.raises(AnanError, match=r"image .*junk\.png is not a readable image"):
        load_image(junk, NHWC)
    full = (tmp_path / "ok.jpg").as_posix()
    save(full, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((tmp_path / "ok.jpg").read_bytes()[:300])
    with pytest.raises(AnanError, match=r"image .*cut\.jpg is corrupt or truncated"):
        load_image(cut, NHWC)


def test_load_images_builds_a_batch_in_the_model_layout(tmp_path):
    paths = [save(tmp_path / f"{i}.png", solid(8, 6, (i * 40, 0, 255))) for i in range(3)]
    batch, loaded, skipped = load_images(paths, NCHW)
    assert batch.shape == (3, 3, 8, 6) and batch.dtype == np.float32
    assert batch.flags.c_contiguous
    assert loaded == paths and skipped == []
    np.testing.assert_allclose(batch[:, 0, 0, 0], np.array([0, 40, 80]) / 255, atol=1e-7)
    np.testing.assert_allclose(batch[:, 2], 1.0)


def test_load_images_refuses_or_skips_bad_files(tmp_path):
    good = save(tmp_path / "good.png", solid(8, 6, (1, 2, 3)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(AnanError, match=r"bad\.png"):
        load_images([good, bad], NHWC)
    batch, loaded, skipped = load_images([good, bad, tmp_path / "gone.png"], NHWC, on_error="skip")
    assert batch.shape == (1, 8, 6, 3) and loaded == [good]
    assert [p for p, _ in skipped] == [str(bad), str(tmp_path / "gone.png")]
    assert "not a readable image" in skipped[0][1] and "does not exist" in skipped[1][1]
    empty, loaded, _ = load_images([], NCHW)
    assert empty.shape == (0, 3, 8, 6) and loaded == []
    with pytest.raises(AnanError, match="on_error must be"):
        load_images([good], NHWC, on_error="ignore")  # type: ignore[arg-type]


def test_load_images_with_progress_bar(tmp_path):
    paths = [save(tmp_path / f"{i}.png", solid(8, 6, (i, i, i))) for i in range(4)]
    batch, _, _ = load_images(paths, NHWC, progress=True)
    assert batch.shape == (4, 8, 6, 3)


# --- channel order, per-channel scaling, resize filter, aspect ------------------------------


def _photo(tmp_path, size=(20, 10), seed=0):
    """A random RGB PNG of ``size`` (width, height) and its pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    path = tmp_path / f"photo{seed}.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_bgr_and_per_channel_scaling_follow_the_model_channel_order(tmp_path):
    path, pixels = _photo(tmp_path, (6, 4))
    mean = np.array([103.939, 116.779, 123.68])  # B, G, R
    spec = InputSpec("NCHW", 4, 6, 3, scale=1.0, offset=tuple(-mean), channel_order="BGR")
    batch, _, _ = load_images([path], spec)
    expected = pixels[:, :, ::-1].astype(np.float32) - mean.astype(np.float32)
    np.testing.assert_array_equal(batch[0], expected.transpose(2, 0, 1))
    scale = (1 / 58.395, 1 / 57.12, 1 / 57.375)
    x = load_image(path, InputSpec("NHWC", 4, 6, 3, scale=scale, offset=(-2.0, -2.0, -1.8)))
    np.testing.assert_allclose(x, pixels * np.float32(scale) + np.float32([-2.0, -2.0, -1.8]))


def test_gray_images_ignore_the_channel_order(tmp_path):
    path, pixels = _photo(tmp_path, (6, 4))
    rgb, bgr = (InputSpec("NHWC", 4, 6, 1, scale=1.0, channel_order=o) for o in ("RGB", "BGR"))
    np.testing.assert_array_equal(load_image(path, rgb), load_image(path, bgr))


@pytest.mark.parametrize("resize", ["bilinear", "nearest", "bicubic"])
def test_resize_uses_the_recorded_filter(tmp_path, resize):
    path, pixels = _photo(tmp_path)
    x = load_image(path, InputSpec("NHWC", 5, 5, 3, scale=1.0, resize=resize))
    wanted = Image.fromarray(pixels).resize((5, 5), getattr(Image.Resampling, resize.upper()))
    np.testing.assert_array_equal(x, np.asarray(wanted, np.float32))


def test_aspect_crop_cuts_the_centre_before_resizing(tmp_path):
    path, pixels = _photo(tmp_path, (20, 10))
    x = load_image(path, InputSpec("NHWC", 5, 5, 3, scale=1.0, aspect="crop"))
    centre = Image.fromarray(pixels[:, 5:15]).resize((5, 5), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(x, np.asarray(centre, np.float32))
    stretched = load_image(path, InputSpec("NHWC", 5, 5, 3, scale=1.0))
    assert not np.array_equal(x, stretched)
    same = load_image(path, InputSpec("NHWC", 10, 20, 3, scale=1.0, aspect="crop"))
    np.testing.assert_array_equal(same, pixels.astype(np.float32))  # aspect already right
