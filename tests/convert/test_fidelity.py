"""Pixels to labels, exactly: for Keras models with and without their own preprocessing,
``predict`` on image files equals Keras on the same decoded pixels, and the ANAN model
equals the literal loop on predict's own tensor (issue 22).

A model that rescales or normalises its input itself (``Rescaling``, ``Normalization``)
must be fed the pixels as they are: anan-onnx reads that from the model and records
``scale 1, offset 0`` (never 1/255 on top). The default tier uses tiny models; one member
of each keras.applications family that carries its own preprocessing runs under the
``integration`` marker (tests/convert/test_fidelity_applications.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from anan_onnx import AnanParams, LiteralReference, read_metadata
from anan_onnx.cli.app import main
from anan_onnx.runtime.image_files import load_images
from anan_onnx.runtime.inputs import InputSpec

pytest.importorskip("keras", reason="the 'keras' extra is needed for Keras models")
pytest.importorskip("tf2onnx", reason="the 'keras' extra is needed for Keras models")
pytestmark = pytest.mark.keras

TOLERANCE = 1e-5  # relative to the largest output magnitude
SIZE = 12
#: parameters whose astrocytes act on these tiny models (the ANAN output must differ)
PARAMS = ["--k", "4", "--mu", "1", "--a", "1.5", "--b", "0.5"]


def image_files(folder: Path, n: int, size: int, seed: int = 3) -> tuple[list[Path], np.ndarray]:
    """``n`` random RGB PNGs of the model's size, and their pixels (uint8 NHWC)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), np.uint8)
    paths = [folder / f"image{i}.png" for i in range(n)]
    for path, p in zip(paths, pixels, strict=True):
        Image.fromarray(p).save(path)
    return paths, pixels


def predict(model: Path, images: list[Path], capsys) -> np.ndarray:
    """``anan-onnx predict --json`` outputs, in input order."""
    capsys.readouterr()
    assert main(["predict", "--json", str(model), *map(str, images)]) == 0
    return np.array([row["probabilities"] for row in json.loads(capsys.readouterr().out)[
        "predictions"]])  # fmt: skip


def close(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| relative to the largest magnitude of ``b`` (logits are not
    probabilities; at least 1: probabilities are compared as they are)."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1.0))


def check_fidelity(
    source: Path, keras_outputs, images, pixels, out: Path, capsys, params=PARAMS, divide=1
):
    """Converts ``source`` by the CLI with default preprocessing and checks predict
    against Keras on the decoded pixels (``keras_outputs(pixels / divide)``: raw pixels
    unless ``divide``) and the ANAN model against the literal loop on predict's tensor.
    Returns the base model's metadata."""
    anan = out / "model.anan.onnx"
    assert main(["convert", str(source), "-o", str(anan), *params]) == 0
    base = anan.with_name("model.base.onnx")
    md = read_metadata(onnx.load(base))
    spec = InputSpec.from_metadata(md)
    expected = np.asarray(keras_outputs(pixels.astype(np.float32) / np.float32(divide)))
    plain = predict(base, images, capsys)
    assert close(plain, expected) <= TOLERANCE, "predict differs from Keras on the pixels"
    x, _, _ = load_images(images, spec)
    params_ = AnanParams.from_strings(read_metadata(onnx.load(anan)))
    target = read_metadata(onnx.load(anan))["target_layer"]
    loop = LiteralReference(onnx.load(base), target, params_).run(x).outputs[0]
    ours = predict(anan, images, capsys)
    assert close(ours, loop) <= TOLERANCE, "the ANAN model differs from the literal loop"
    magnitude = max(np.abs(plain).max(), 1e-30)
    acted = np.abs(loop - plain).max(axis=1) > TOLERANCE * magnitude
    assert acted.any(), "the astrocytes changed no output: the check would prove nothing"
    assert np.array_equal(np.abs(ours - plain).max(axis=1) > TOLERANCE * magnitude, acted)
    return md


@pytest.fixture(scope="module")
def keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras


def _tiny(keras, *front):
    """Input -> ``front`` layers -> Conv2D -> pooling -> Dense logits."""
    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for layer in front:
        x = layer(x)
    x = layers.Conv2D(6, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3)(x))


def _run(keras, tmp_path, capsys, model, divide=1):
    source = tmp_path / "source.keras"
    model.save(source)
    images, pixels = image_files(tmp_path, 4, SIZE)
    md = check_fidelity(
        source, lambda x: model(x, training=False), images, pixels, tmp_path, capsys,
        divide=divide,
    )  # fmt: skip
    return md, json.loads(md["preprocess_from"])


def test_plain_model_gets_the_assumed_default(keras, tmp_path, capsys):
    md, sources = _run(keras, tmp_path, capsys, _tiny(keras), divide=255)
    assert float(md["scale"]) == 1 / 255 and sources["scale"] == "assumed"


def test_rescaling_layer_means_raw_pixels(keras, tmp_path, capsys):
    model = _tiny(keras, keras.layers.Rescaling(1 / 127.5, -1))
    md, sources = _run(keras, tmp_path, capsys, model)
    assert (md["scale"], md["offset"]) == ("1.0", "0.0") and sources["scale"] == "read"
    assert "Rescaling" in md["preprocess_note"]


def test_normalization_adapted_on_pixels_means_raw_pixels(keras, tmp_path, capsys):
    norm = keras.layers.Normalization()
    rng = np.random.default_rng(1)
    norm.adapt(rng.uniform(0, 255, (32, SIZE, SIZE, 3)).astype("float32"))
    md, sources = _run(keras, tmp_path, capsys, _tiny(keras, norm))
    assert (md["scale"], md["offset"]) == ("1.0", "0.0") and sources["scale"] == "read"
    assert "Normalization" in md["preprocess_note"]


def test_normalization_adapted_on_fractions_means_pixels_over_255(keras, tmp_path, capsys):
    norm = keras.layers.Normalization()
    norm.adapt(np.random.default_rng(2).uniform(0, 1, (32, SIZE, SIZE, 3)).astype("float32"))
    md, sources = _run(keras, tmp_path, capsys, _tiny(keras, norm), divide=255)
    assert float(md["scale"]) == 1 / 255 and sources["scale"] == "read"
