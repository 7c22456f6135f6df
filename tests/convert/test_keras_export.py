"""Keras models in (Sequential/Functional, .keras/.h5), and the paper's own procedure in
TensorFlow (set_weights per step) as a second, framework-level reference."""

from __future__ import annotations

import os

import numpy as np
import pytest

from anan_onnx import AnanParams, LiteralReference, Session, convert_file, verify_models
from anan_onnx.runtime.labels import labels_agree

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras", reason="the 'keras' extra is needed for Keras tests")

pytestmark = pytest.mark.keras
SIZE = (16, 16, 3)


def _randomise_biases(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            layer.set_weights([weights[0], rng.normal(0, 0.2, weights[1].shape)])


def sequential(activation_in_conv: bool):
    model = keras.Sequential(
        [
            keras.Input(SIZE),
            keras.layers.Conv2D(
                6, 3, padding="same", name="conv", activation="relu" if activation_in_conv else None
            ),
            *([] if activation_in_conv else [keras.layers.Activation("relu")]),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    _randomise_biases(model, 1)
    return model


def functional():
    inputs = keras.Input(SIZE)
    x = keras.layers.Conv2D(5, 3, strides=2, name="conv")(inputs)
    x = keras.layers.ReLU()(x)
    y = keras.layers.Conv2D(5, 1, padding="same")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    _randomise_biases(model, 2)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    paths = {}
    for name, model, suffix in [
        ("seq_pre", sequential(False), ".keras"),
        ("seq_post", sequential(True), ".keras"),
        ("functional", functional(), ".keras"),
        ("seq_h5", sequential(False), ".h5"),
    ]:
        paths[name] = root / f"{name}{suffix}"
        model.save(paths[name])
    return root, paths


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SIZE), dtype=np.float32)


@pytest.mark.parametrize("name", ["seq_pre", "seq_post", "functional", "seq_h5"])
@pytest.mark.parametrize("rule", ["multiplicative", "additive"])
def test_keras_models_match_reference(saved, name, rule):
    root, paths = saved
    params = AnanParams(k=4, mu=2, a=1.5, b=0.5, rule=rule)
    out = root / f"{name}_{rule}.anan.onnx"
    result = convert_file(paths[name], out, params)
    assert "conv" in result.target_layer
    report = verify_models(out, root / f"{name}_{rule}.base.onnx", n=12)
    assert report.passed, report.summary()
    assert Session(out).metadata["layout"] == "NHWC"


def _tf_literal_loop(model, params: AnanParams, x: np.ndarray) -> np.ndarray:
    """The paper's procedure in Keras: back up, k passes with set_weights, predict, restore."""
    conv = model.get_layer("conv")
    watch = keras.Model(model.inputs[0], conv.output)  # Keras' layer output (incl. activation)
    w0, bias = conv.get_weights()  # kernel is (kh, kw, C, O)
    outputs = []
    for image in x:
        w = w0.copy()
        r = np.zeros(w.shape[-1])
        for _ in range(params.k):
            conv.set_weights([w, bias])
            y = np.asarray(watch(image[None]))[0]  # (H, W, O)
            s = y.mean(axis=(0, 1))
            u = np.where(s > 0, 1, -1)
            r = np.where(np.abs(r) == params.mu, r, r + u)
            for j in range(w.shape[-1]):
                if r[j] == params.mu:
                    w[..., j] = w[..., j] * np.float32(params.a)
                elif r[j] == -params.mu:
                    w[..., j] = w[..., j] * np.float32(1 - params.b)
        conv.set_weights([w, bias])
        outputs.append(np.asarray(model(image[None]))[0])
        conv.set_weights([w0, bias])  # restore for the next image
    return np.stack(outputs)


@pytest.mark.parametrize(("name", "signal"), [("seq_pre", "pre"), ("seq_post", "post")])
def test_onnx_graph_does_what_the_keras_procedure_does(saved, name, signal):
    root, paths = saved
    model = keras.models.load_model(paths[name], compile=False)
    params = AnanParams(k=5, mu=2, a=1.5, b=0.5, signal=signal)
    out = root / f"{name}_tf.anan.onnx"
    result = convert_file(paths[name], out, params)
    x = images(16, seed=3)
    expected = _tf_literal_loop(model, params, x)
    ours = Session(out).predict(x)
    ties = LiteralReference(result.base, result.target_layer, params).run(x).near_tie
    keep = ~ties
    assert keep.sum() >= 12
    assert labels_agree(ours[keep], expected[keep]).all()
    assert np.abs(ours[keep] - expected[keep]).max() <= 1e-5
    base = np.asarray(model(x))
    assert np.abs(expected - base).max() > 1e-3, "astrocytes changed nothing: vacuous case"


def test_not_a_keras_archive(tmp_path):
    import zipfile

    from anan_onnx import AnanError

    bogus = tmp_path / "model.keras"
    with zipfile.ZipFile(bogus, "w") as z:
        z.writestr("hello.txt", "not a model")
    with pytest.raises(AnanError, match="not a loadable Keras model"):
        convert_file(bogus, tmp_path / "m.anan.onnx", AnanParams())
    assert not (tmp_path / "m.anan.onnx").exists()


def test_keras_opset_13(saved):
    root, paths = saved
    result = convert_file(paths["seq_pre"], root / "o13.anan.onnx", AnanParams(a=1.5), opset=13)
    assert [o.version for o in result.anan.opset_import if o.domain == ""] == [13]
    assert verify_models(result.anan, result.base, n=6).passed
