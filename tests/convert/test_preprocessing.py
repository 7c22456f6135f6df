"""Preprocessing recorded at conversion: read from the model, given, or assumed; and the
end-to-end fidelity of ONNX models that normalise per channel, through ``predict``.

The Keras side (Rescaling/Normalization layers, keras.applications) is in
tests/convert/test_fidelity.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fixtures.own_scaling import MEAN01, STD01, with_chain
from PIL import Image

from anan_onnx import AnanError, AnanParams, LiteralReference, load_base, read_metadata
from anan_onnx.cli.app import main
from anan_onnx.convert.preprocessing import PRESETS, PreprocessRequest, mean_std_affine
from anan_onnx.reference.verify import verify_models
from anan_onnx.testing import VARIANTS, build_cnn

TOLERANCE = 1e-5
#: parameters whose astrocytes act on the 11x11 test CNN (the ANAN output must differ)
PARAMS = ["--k", "4", "--mu", "1", "--a", "1.5", "--b", "0.5"]


def _channel(values) -> np.ndarray:
    return np.asarray(values, np.float64).reshape(1, 3, 1, 1)


def _sources(model: onnx.ModelProto) -> dict[str, str]:
    return json.loads(read_metadata(model)["preprocess_from"])


# --- presets and options --------------------------------------------------------------------


def test_presets_have_the_keras_applications_constants():
    tf_scale, tf_offset = mean_std_affine(PRESETS["tf"].mean, PRESETS["tf"].std)
    assert (tf_scale, tf_offset) == (1 / 127.5, -1.0)
    scale, offset = PreprocessRequest(preset="torch").affine()
    pixels = np.array([0.0, 128.0, 255.0])[:, None]
    np.testing.assert_allclose(
        pixels * np.array(scale) + np.array(offset), (pixels / 255 - MEAN01) / STD01, rtol=1e-12
    )
    assert PreprocessRequest(preset="caffe").affine() == (1.0, (-103.939, -116.779, -123.68))
    assert PRESETS["caffe"].channel_order == "BGR"
    assert PreprocessRequest(preset="raw").affine() == (1.0, -0.0)


def test_mean_std_are_pixel_units_and_fractions_are_refused():
    scale, offset = PreprocessRequest(mean=(123.675, 116.28, 103.53), std=58.395).affine()
    assert offset == pytest.approx(tuple(-m / 58.395 for m in (123.675, 116.28, 103.53)))
    with pytest.raises(AnanError, match="pixel units .* multiply them by 255"):
        PreprocessRequest(mean=tuple(MEAN01), std=tuple(STD01))
    with pytest.raises(AnanError, match="--preprocess and --scale/--offset both set"):
        PreprocessRequest(preset="tf", scale=1.0)
    with pytest.raises(AnanError, match="--scale/--offset and --mean/--std"):
        PreprocessRequest(offset=1.0, mean=3.0)


# --- what is recorded -----------------------------------------------------------------------


def test_defaults_are_recorded_as_assumed(tmp_path):
    path = tmp_path / "plain.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), path)
    base = load_base(path)
    md = read_metadata(base)
    assert float(md["scale"]) == 1 / 255 and md["channel_order"] == "RGB"
    assert _sources(base) == {
        "layout": "read", "size": "read", "channels": "read", "scale": "assumed",
        "offset": "assumed", "channel_order": "assumed", "resize": "assumed",
        "aspect": "assumed",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("steps", "scale"),
    [
        ([("Mul", 1 / 127.5, False), ("Add", -1.0, False)], 1.0),
        ([("Sub", _channel(MEAN01 * 255), False), ("Div", _channel(STD01 * 255), False)], 1.0),
        ([("Sub", _channel(MEAN01), False), ("Div", _channel(STD01), False)], 1 / 255),
    ],
    ids=["tf", "torch_pixels", "torch_fractions"],
)
def test_a_leading_scaling_is_read_and_never_doubled(tmp_path, steps, scale):
    path = tmp_path / "chain.onnx"
    onnx.save(with_chain(steps), path)
    base = load_base(path)
    md = read_metadata(base)
    assert (float(md["scale"]), float(md["offset"])) == (scale, 0.0)
    assert _sources(base)["scale"] == _sources(base)["offset"] == "read"
    assert md["preprocess_note"].startswith("the model scales its input itself (")
    again = tmp_path / "again.onnx"  # an anan-onnx base model keeps what it records
    onnx.save(base, again)
    assert read_metadata(load_base(again)) == md


def test_a_given_scaling_that_doubles_the_model_own_is_warned_about(tmp_path):
    path = tmp_path / "chain.onnx"
    onnx.save(with_chain([("Div", np.float64(255), False)]), path)
    with pytest.warns(UserWarning, match="scaled twice"):
        base = load_base(path, scale=1 / 255)
    assert _sources(base)["scale"] == "given"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_base(path, preprocess=PreprocessRequest(preset="raw"))


def test_keras_applications_names_propose_their_preprocess_input_mode(tmp_path):
    from anan_onnx.metadata import write_metadata

    model = build_cnn(VARIANTS["plain"])
    write_metadata(model, {"keras_name": "vgg16"})
    path = tmp_path / "vgg16.onnx"
    onnx.save(model, path)
    base = load_base(path)
    md = read_metadata(base)
    assert md["channel_order"] == "BGR" and md["offset"] == "-103.939,-116.779,-123.68"
    assert _sources(base)["scale"] == _sources(base)["channel_order"] == "assumed"
    assert "preprocess_input mode 'caffe'" in md["preprocess_note"]
    given = read_metadata(load_base(path, preprocess=PreprocessRequest(channel_order="RGB")))
    assert given["channel_order"] == "RGB"


def test_per_channel_values_must_fit_the_channels(tmp_path):
    path = tmp_path / "gray.onnx"
    onnx.save(build_cnn(VARIANTS["plain"].__class__(in_channels=1)), path)
    with pytest.raises(AnanError, match="has 3 values but the model has 1 channel"):
        load_base(path, preprocess=PreprocessRequest(preset="torch"))


@pytest.mark.parametrize(
    "request_",
    [PreprocessRequest(scale=(1.0, 2.0, 3.0)), PreprocessRequest(preset="torch")],
    ids=["scale", "preset"],
)
def test_per_channel_values_are_counted_before_the_chain_is_compared(tmp_path, request_):
    """A 1-channel model with its own scaling chain: 3 values are one line, no traceback."""
    gray = build_cnn(VARIANTS["plain"].__class__(in_channels=1))
    path = tmp_path / "gray-chain.onnx"
    onnx.save(with_chain([("Mul", np.float64(1 / 255), False)], gray), path)
    with pytest.raises(AnanError, match="has 3 values but the model has 1 channel"):
        load_base(path, preprocess=request_)


def test_a_recorded_scale_that_was_assumed_yields_to_the_graph(tmp_path):
    """A model recording 1/255 as *assumed* whose graph divides by 255 itself: the graph's
    reading (raw pixels) wins; a recorded scale that was given still wins."""
    from anan_onnx.metadata import write_metadata

    for source, scale in (("assumed", 1.0), ("given", 1 / 255)):
        model = with_chain([("Div", np.float64(255), False)])
        write_metadata(
            model,
            {"scale": repr(1 / 255), "offset": "0.0",
             "preprocess_from": json.dumps({"scale": source, "offset": source})},
        )  # fmt: skip
        path = tmp_path / f"{source}.onnx"
        onnx.save(model, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the given one is warned about (scaled twice)
            base = load_base(path)
        assert float(read_metadata(base)["scale"]) == scale
        assert _sources(base)["scale"] == ("read" if source == "assumed" else "given")


# --- end to end: image files through predict ------------------------------------------------


def _images(folder: Path, n: int = 4, size: int = 11) -> tuple[list[Path], np.ndarray]:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (n, size, size, 3), np.uint8)
    paths = []
    for i, p in enumerate(pixels):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(p).save(paths[-1])
    return paths, pixels


def _predict(model: Path, images: list[Path], capsys) -> np.ndarray:
    capsys.readouterr()
    assert main(["predict", "--json", str(model), *map(str, images)]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    return np.array([r["probabilities"] for r in rows])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def _convert(source: Path, out: Path, *options: str) -> tuple[Path, Path]:
    assert main(["convert", str(source), "-o", str(out), *PARAMS, *options]) == 0
    return out, out.with_name(out.name.replace(".anan.onnx", ".base.onnx"))


def _check_anan(anan: Path, base: Path, images: list[Path], capsys) -> None:
    """The ANAN model through predict equals the literal loop on predict's own tensor, and
    differs from the base model wherever the loop does."""
    from anan_onnx.runtime.image_files import load_images
    from anan_onnx.runtime.inputs import InputSpec

    md = read_metadata(onnx.load(anan))
    x, _, _ = load_images(images, InputSpec.from_metadata(md))
    params = AnanParams.from_strings(md)
    expected = LiteralReference(onnx.load(base), md["target_layer"], params).run(x).outputs[0]
    ours, plain = _predict(anan, images, capsys), _predict(base, images, capsys)
    assert np.abs(ours - expected).max() <= TOLERANCE
    acted = np.abs(expected - plain).max(axis=1) > TOLERANCE
    assert acted.any(), "the astrocytes never changed an output: the test would prove nothing"
    assert np.array_equal(np.abs(ours - plain).max(axis=1) > TOLERANCE, acted)


def test_onnx_model_with_its_own_per_channel_normalisation(tmp_path, capsys):
    """(pixel/255 - mean)/std inside the graph: convert records pixel/255 (read), predict
    equals the model on pixel/255, and the ANAN model the literal loop."""
    raw = with_chain([("Sub", _channel(MEAN01), False), ("Div", _channel(STD01), False)])
    source = tmp_path / "norm.onnx"
    onnx.save(raw, source)
    anan, base = _convert(source, tmp_path / "norm.anan.onnx")
    images, pixels = _images(tmp_path)
    expected = _run(raw, pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
    assert np.abs(_predict(base, images, capsys) - expected).max() <= TOLERANCE
    _check_anan(anan, base, images, capsys)
    assert verify_models(anan, base, n=4).preprocess_warning is None


IMAGENET_OPTIONS = ["--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375"]


@pytest.mark.parametrize(
    "how", [["--preprocess", "torch"], IMAGENET_OPTIONS], ids=["preset", "mean_std"]
)
def test_per_channel_normalisation_given_by_the_user(tmp_path, capsys, how):
    raw = build_cnn(VARIANTS["plain"])  # trained on (pixel/255 - mean)/std, done outside
    source = tmp_path / "plain.onnx"
    onnx.save(raw, source)
    anan, base = _convert(source, tmp_path / "plain.anan.onnx", *how)
    assert _sources(onnx.load(anan))["scale"] == "given"
    images, pixels = _images(tmp_path)
    x = (pixels / 255.0 - MEAN01) / STD01
    expected = _run(raw, x.transpose(0, 3, 1, 2))
    assert np.abs(_predict(base, images, capsys) - expected).max() <= TOLERANCE
    _check_anan(anan, base, images, capsys)


def test_caffe_bgr_through_predict(tmp_path, capsys):
    raw = build_cnn(VARIANTS["plain"])
    source = tmp_path / "caffe.onnx"
    onnx.save(raw, source)
    anan, base = _convert(source, tmp_path / "caffe.anan.onnx", "--preprocess", "caffe")
    images, pixels = _images(tmp_path)
    x = pixels[..., ::-1] - np.array([103.939, 116.779, 123.68])
    expected = _run(raw, x.transpose(0, 3, 1, 2))
    assert np.abs(_predict(base, images, capsys) - expected).max() <= TOLERANCE
    _check_anan(anan, base, images, capsys)
    capsys.readouterr()  # verify --inputs prepares the images the same way
    assert main(["verify", str(anan), "--inputs", *map(str, images), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["images"] == len(images)
    assert report["preprocess_warning"] is None


def test_verify_warns_when_the_recorded_preprocessing_doubles_the_graph_own(tmp_path, capsys):
    """Issue 23's risk: metadata saying pixel/255 for a graph that divides by 255 itself."""
    source = tmp_path / "div.onnx"
    onnx.save(with_chain([("Div", np.float64(255), False)]), source)
    anan, base = _convert(source, tmp_path / "div.anan.onnx")
    assert verify_models(anan, base, n=2).preprocess_warning is None
    from anan_onnx.metadata import write_metadata

    bad = onnx.load(anan)
    write_metadata(bad, {"scale": repr(1 / 255)})
    onnx.save(bad, anan)
    capsys.readouterr()
    assert main(["verify", str(anan), "-n", "2"]) == 0  # the graphs still agree: a warning
    captured = capsys.readouterr()
    assert captured.out.startswith("PASS")
    assert "scaled twice" in captured.err and "--preprocess raw" in captured.err


def test_a_keras_scaling_layer_missing_from_the_graph_is_warned_about(tmp_path):
    """Should an exporter fold a Rescaling away, the 1/255 default is said to be a guess."""
    from anan_onnx.metadata import write_metadata

    model = build_cnn(VARIANTS["plain"])
    write_metadata(model, {"keras_before": json.dumps({"conv2d": ["Rescaling 'rescaling'"]})})
    path = tmp_path / "folded.onnx"
    onnx.save(model, path)
    with pytest.warns(UserWarning, match=r"scaling \(Rescaling 'rescaling'\).*preprocess raw"):
        base = load_base(path)
    assert _sources(base)["scale"] == "assumed"


def test_the_training_record_is_read_as_the_model_own_facts(tmp_path):
    """research/train_base_cnn.py records how its images were prepared (training.json)."""
    path = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), path)
    record = {"input": {"scale": 1 / 255, "resize": "bicubic", "color": "BGR", "layout": "NCHW"}}
    (tmp_path / "cnn.training.json").write_text(json.dumps(record))
    base = load_base(path)
    md, sources = read_metadata(base), _sources(base)
    assert (float(md["scale"]), md["resize"], md["channel_order"]) == (1 / 255, "bicubic", "BGR")
    assert sources["scale"] == sources["resize"] == sources["channel_order"] == "read"
    assert md["preprocess_note"] == "as the model was trained (cnn.training.json)"
    given = load_base(path, preprocess=PreprocessRequest(resize="nearest"))
    assert read_metadata(given)["resize"] == "nearest" and _sources(given)["resize"] == "given"
