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

import numpy as np
import pytest
from fixtures.fidelity import SIZE, check_fidelity, image_files

pytest.importorskip("keras", reason="the 'keras' extra is needed for Keras models")
pytest.importorskip("tf2onnx", reason="the 'keras' extra is needed for Keras models")
pytestmark = pytest.mark.keras


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
