"""Tests of anan_onnx.runtime.images: InputSpec, image files, user arrays, .npy files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anan_onnx.errors import AnanError
from anan_onnx.runtime.images import InputSpec, check_batch, load_image, load_images, load_npy

NHWC = InputSpec("NHWC", 8, 6, 3)
NCHW = InputSpec("NCHW", 8, 6, 3)


def save(path, array: np.ndarray, **kwargs) -> str:
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


# --- InputSpec ------------------------------------------------------------------------------


def test_spec_metadata_round_trip_is_exact():
    spec = InputSpec("NCHW", 28, 30, 1, scale=1 / 127.5, offset=-1.0)
    md = spec.to_metadata()
    assert all(isinstance(v, str) for v in md.values())
    assert InputSpec.from_metadata(md) == spec
    assert InputSpec.from_metadata({**md, "k": "4", "format": "1"}) == spec  # extra keys ignored


def test_spec_batch_shape_follows_layout():
    assert NHWC.batch_shape(5) == (5, 8, 6, 3)
    assert NCHW.batch_shape(5) == (5, 3, 8, 6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layout": "HWC"}, "layout must be NHWC or NCHW"),
        ({"channels": 4}, "channels must be 1 (grayscale) or 3 (RGB)"),
        ({"height": 0}, "height must be a positive integer"),
        ({"width": 2.5}, "width must be a positive integer"),
        ({"scale": float("nan")}, "scale must be finite"),
        ({"scale": 0}, "scale must not be 0"),
    ],
)
def test_spec_rejects_invalid_values(kwargs, message):
    args = {"layout": "NHWC", "height": 4, "width": 4, "channels": 3, **kwargs}
    with pytest.raises(AnanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        InputSpec(**args)


def test_spec_from_metadata_names_missing_and_invalid_keys():
    md = NHWC.to_metadata()
    del md["scale"], md["width"]
    with pytest.raises(AnanError, match="lacks the preprocessing keys width, scale"):
        InputSpec.from_metadata(md)
    with pytest.raises(AnanError, match="height='big' is not a number"):
        InputSpec.from_metadata({**NHWC.to_metadata(), "height": "big"})
    with pytest.raises(AnanError, match="channels='2.5' is not an integer"):
        InputSpec.from_metadata({**NHWC.to_metadata(), "channels": "2.5"})
    assert InputSpec.from_metadata({**NHWC.to_metadata(), "layout": "nchw"}).layout == "NCHW"


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
    with pytest.raises(AnanError, match="is a folder"):
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


# --- check_batch ----------------------------------------------------------------------------


def test_check_batch_accepts_and_casts():
    x = check_batch(np.zeros((2, 8, 6, 3), np.float64), NHWC)
    assert x.dtype == np.float32 and x.shape == (2, 8, 6, 3)
    assert check_batch(np.ones((2, 8, 6, 3), np.float16), NHWC).dtype == np.float32
    same = np.zeros((1, 8, 6, 3), np.float32)
    assert check_batch(same, NHWC) is same  # no copy when nothing to do


def test_check_batch_adds_the_batch_axis_to_one_image():
    assert check_batch(np.zeros((8, 6, 3), np.float32), NHWC).shape == (1, 8, 6, 3)
    assert check_batch(np.zeros((3, 8, 6), np.float32), NCHW).shape == (1, 3, 8, 6)


def test_check_batch_wrong_size():
    with pytest.raises(
        AnanError,
        match=r"batch shape \(2, 16, 16, 3\) does not match the model input \(N, 8, 6, 3\) NHWC: "
        r"resize the images to 8x6",
    ):
        check_batch(np.zeros((2, 16, 16, 3), np.float32), NHWC)


def test_check_batch_wrong_channels():
    with pytest.raises(
        AnanError,
        match=r"batch has 1 channel, shape \(2, 8, 6, 1\), but the model needs 3, "
        r"\(N, 8, 6, 3\) NHWC: pass RGB images",
    ):
        check_batch(np.zeros((2, 8, 6, 1), np.float32), NHWC)
    gray = InputSpec("NCHW", 8, 6, 1)
    with pytest.raises(AnanError, match="has 3 channels, .*needs 1, .*: pass grayscale images"):
        check_batch(np.zeros((2, 3, 8, 6), np.float32), gray)


def test_check_batch_hints_at_the_other_layout():
    with pytest.raises(
        AnanError, match=r"looks like NCHW; transpose to NHWC \(x.transpose\(0, 2, 3, 1\)\)"
    ):
        check_batch(np.zeros((2, 3, 8, 6), np.float32), NHWC)
    with pytest.raises(AnanError, match="looks like NHWC; transpose to NCHW"):
        check_batch(np.zeros((2, 8, 6, 3), np.float32), NCHW)
    # A raw onnxruntime shape: the layout is guessed from the channel axis.
    with pytest.raises(AnanError, match="looks like NHWC; transpose to NCHW"):
        check_batch(np.zeros((2, 8, 6, 3), np.float32), ("batch", 3, 8, 6))


def test_check_batch_with_a_model_shape():
    x = np.zeros((5, 8, 6, 3), np.float32)
    for shape in [(None, 8, 6, 3), ("N", 8, 6, 3), (-1, 8, 6, 3), (5, 8, "h", 3)]:
        assert check_batch(x, shape).shape == (5, 8, 6, 3)
    with pytest.raises(AnanError, match="has 5 images but the model takes exactly 1 per run"):
        check_batch(x, (1, 8, 6, 3))
    with pytest.raises(AnanError, match=r"does not match the model input \(N, 9, 6, 3\)"):
        check_batch(x, (None, 9, 6, 3))
    with pytest.raises(AnanError, match="not a rectangular array"):
        check_batch([[1.0, 2.0], [3.0]], (None, 8, 6, 3))
    with pytest.raises(AnanError, match=r"has 2 dimensions \(5, 8\) but the model needs 4"):
        check_batch(np.zeros((5, 8), np.float32), (None, 8, 6, 3))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, np.bool_])
def test_check_batch_refuses_integer_pixels(dtype):
    x = np.zeros((1, 8, 6, 3), dtype)
    with pytest.raises(
        AnanError, match=r"integer pixels .*: scale them to float32 first \(x\.astype"
    ):
        check_batch(x, NHWC)
    with pytest.raises(AnanError, match="integer pixels"):
        check_batch(x, (None, 8, 6, 3))


def test_check_batch_refuses_non_numbers_and_empty_batches():
    with pytest.raises(AnanError, match="not numbers"):
        check_batch(np.full((1, 8, 6, 3), "a"), NHWC)
    with pytest.raises(AnanError, match="is empty"):
        check_batch(np.zeros((0, 8, 6, 3), np.float32), NHWC)


def test_check_batch_reports_nan_and_inf():
    x = np.zeros((3, 8, 6, 3), np.float32)
    x[1, 2, 3, 0] = np.nan
    x[2, 0, 0, 1] = np.inf
    x[2, 0, 0, 2] = -np.inf
    with pytest.raises(
        AnanError, match=r"has 1 NaN and 2 Inf values \(first at index \(1, 2, 3, 0\), image 1\)"
    ):
        check_batch(x, NHWC)
    y = np.zeros((1, 8, 6, 3))
    y[0, 0, 0, 0] = np.inf
    with pytest.raises(AnanError, match="0 NaN and 1 Inf"):
        check_batch(y, NHWC)


# --- .npy files -----------------------------------------------------------------------------


def test_load_npy(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(load_npy(tmp_path / "x.npy"), x)


def test_load_npy_errors(tmp_path):
    with pytest.raises(AnanError, match=r"missing\.npy does not exist"):
        load_npy(tmp_path / "missing.npy")
    with pytest.raises(AnanError, match="is a folder"):
        load_npy(tmp_path)
    (tmp_path / "text.npy").write_text("1, 2, 3")
    with pytest.raises(AnanError, match=r"text\.npy is not a \.npy file"):
        load_npy(tmp_path / "text.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AnanError, match="holds Python objects, refused for safety"):
        load_npy(tmp_path / "obj.npy")
    np.savez(tmp_path / "pair.npz", a=np.zeros(2), b=np.ones(2))
    with pytest.raises(AnanError, match=r"is an \.npz archive \(arrays: a, b\)"):
        load_npy(tmp_path / "pair.npz")
    np.save(tmp_path / "full.npy", np.zeros((100, 100), np.float32))
    (tmp_path / "short.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:500])
    with pytest.raises(AnanError, match="damaged .npy file"):
        load_npy(tmp_path / "short.npy")
