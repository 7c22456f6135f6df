"""Tests of anan_onnx.runtime.inputs: InputSpec and the checks of user-given arrays."""

from __future__ import annotations

import numpy as np
import pytest

from anan_onnx.errors import AnanError
from anan_onnx.runtime.inputs import InputSpec, check_batch, parse_numbers

NHWC = InputSpec("NHWC", 8, 6, 3)
NCHW = InputSpec("NCHW", 8, 6, 3)


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


# --- per-channel preprocessing, channel order, resize, aspect -------------------------------


def test_per_channel_spec_round_trips_and_old_metadata_reads_as_the_defaults():
    spec = InputSpec(
        "NHWC", 8, 6, 3, scale=(1 / 58.395, 1 / 57.12, 1 / 57.375), offset=(-2.1, -2.0, -1.8),
        channel_order="bgr", resize="nearest", aspect="crop",
    )  # fmt: skip
    md = spec.to_metadata()
    assert md["scale"] == ",".join(repr(v) for v in spec.scale)
    assert md["channel_order"] == "BGR"
    assert InputSpec.from_metadata(md) == spec
    old = {k: v for k, v in NHWC.to_metadata().items() if k not in ("channel_order", "resize")}
    del old["aspect"]
    assert InputSpec.from_metadata(old) == NHWC
    assert (NHWC.channel_order, NHWC.resize, NHWC.aspect) == ("RGB", "bilinear", "stretch")
    scale, offset = spec.affine()
    assert scale.dtype == np.float32 and scale.shape == offset.shape == (3,)
    assert "channels BGR, resize nearest, aspect crop" in spec.describe()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": (1.0, 2.0)}, "scale has 2 values but the model has 3 channels"),
        ({"channels": 1, "offset": (1.0, 2.0, 3.0)}, "offset has 3 values but the model has 1"),
        ({"scale": (1.0, 0.0, 1.0)}, "scale must not be 0"),
        ({"offset": (0.0, float("inf"), 0.0)}, "offset must be finite"),
        ({"channel_order": "GBR"}, "channel_order must be one of RGB, BGR"),
        ({"resize": "lanczos"}, "resize must be one of bilinear, nearest, bicubic"),
        ({"aspect": "pad"}, "aspect must be one of stretch, crop"),
    ],
)
def test_spec_rejects_invalid_preprocessing(kwargs, message):
    args = {"layout": "NHWC", "height": 4, "width": 4, "channels": 3, **kwargs}
    with pytest.raises(AnanError, match=message):
        InputSpec(**args)


def test_recorded_values_a_runtime_cannot_reproduce_are_refused_with_the_choices():
    with pytest.raises(AnanError, match=r"resize='lanczos' is not one anan-onnx reproduces"):
        InputSpec.from_metadata({**NHWC.to_metadata(), "resize": "lanczos"})
    with pytest.raises(AnanError, match=r"scale='0.1,x,0.2' is not a number"):
        InputSpec.from_metadata({**NHWC.to_metadata(), "scale": "0.1,x,0.2"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1/255", 1 / 255),
        ("1/58.4", 1 / 58.4),
        (" -1 ", -1.0),
        ("0.0171,0.0175,0.0174", (0.0171, 0.0175, 0.0174)),
        ("1/58.395, 1/57.12, 1/57.375", (1 / 58.395, 1 / 57.12, 1 / 57.375)),
    ],
)
def test_one_parser_reads_decimals_fractions_and_lists(text, expected):
    assert parse_numbers(text) == pytest.approx(expected, rel=1e-15, abs=0)


@pytest.mark.parametrize("text", ["abc", "1/0", "nan", "inf", "1,,2", "1/", ""])
def test_parser_refuses_what_is_not_a_finite_number(text):
    with pytest.raises(AnanError, match="invalid number"):
        parse_numbers(text)


def test_metadata_numbers_are_read_by_the_one_parser():
    """Recorded numbers read as the options do: fractions included."""
    md = {"layout": "NHWC", "height": "4", "width": "4", "channels": "3",
          "scale": "1/255", "offset": "-1/2,0,1/2"}  # fmt: skip
    spec = InputSpec.from_metadata(md)
    assert spec.scale == 1 / 255 and spec.offset == (-0.5, 0.0, 0.5)


def test_random_inputs_are_prepared_as_image_files(tmp_path):
    """verify's random inputs: uint8 pixels through to_model_input, the one preparation."""
    import onnx

    from anan_onnx.metadata import write_metadata
    from anan_onnx.reference.verify import random_batches
    from anan_onnx.runtime.image_files import to_model_input
    from anan_onnx.runtime.session import Session
    from anan_onnx.testing import VARIANTS, build_cnn

    model = build_cnn(VARIANTS["plain"])  # NCHW 3 channels
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[2:]]
    spec = InputSpec("NCHW", dims[0], dims[1], 3, scale=(0.5, 1.0, 2.0), offset=-1.0)
    write_metadata(model, spec.to_metadata())
    onnx.save(model, tmp_path / "m.onnx")
    got = next(random_batches(Session(tmp_path / "m.onnx"), 5, 3, 5))
    pixels = np.random.default_rng(3).integers(0, 256, (5, *dims, 3), dtype=np.uint8)
    np.testing.assert_array_equal(got, to_model_input(pixels, spec))
