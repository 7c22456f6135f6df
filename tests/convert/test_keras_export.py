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


def _preprocessed(normalization) -> object:
    """Rescaling, Normalization, ZeroPadding2D, then Conv2D 'stem_conv' without bias and a
    BatchNormalization (TensorFlow folds it into the kernel), as EfficientNet opens."""
    inputs = keras.Input(SIZE)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = normalization(x)
    x = keras.layers.ZeroPadding2D(1, name="stem_pad")(x)
    x = keras.layers.Conv2D(6, 3, use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(6, 3, name="stem_conv_1")(x)  # its scope name is stem_conv_1 too
    x = keras.layers.SeparableConv2D(4, 3, name="sep")(x)  # two ONNX Convs
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    rng = np.random.default_rng(4)
    bn = model.get_layer("stem_bn")
    bn.set_weights([rng.uniform(0.5, 2, w.shape).astype(np.float32) for w in bn.get_weights()])
    return model


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    """Models whose Normalization state is a captured tensor (mean/variance given) or
    variables filled by ``adapt``: both must be frozen, not become graph inputs."""
    root = tmp_path_factory.mktemp("prep")
    keras.utils.set_random_seed(1)
    given = keras.layers.Normalization(mean=[0.4, 0.5, 0.6], variance=[0.05, 0.08, 0.1])
    adapted = keras.layers.Normalization()
    adapted.adapt(np.random.default_rng(2).random((8, *SIZE), dtype=np.float32))
    paths = {}
    for name, layer in [("given", given), ("adapted", adapted)]:
        model = _preprocessed(layer)
        paths[name] = root / f"{name}.keras"
        model.save(paths[name])
    return root, paths


@pytest.mark.parametrize("name", ["given", "adapted"])
def test_normalization_state_is_frozen(preprocessed, name):
    root, paths = preprocessed
    params = AnanParams(k=4, mu=2, a=1.5, b=0.5)
    result = convert_file(paths[name], root / f"{name}.anan.onnx", params)
    inits = {i.name for i in result.base.graph.initializer}
    assert [i.name for i in result.base.graph.input if i.name not in inits] == ["input"]
    read = {name for node in result.base.graph.node for name in node.input}
    assert inits <= read, f"unused initializers (the folded kernels?): {inits - read}"
    x = images(8, seed=5) * 255
    keras_out = np.asarray(keras.models.load_model(paths[name], compile=False)(x))
    base_out = Session(root / f"{name}.base.onnx").predict(x)
    assert np.abs(base_out - keras_out).max() <= 1e-4 * np.abs(keras_out).max()
    report = verify_models(result.anan, result.base, inputs=x)
    assert report.passed, report.summary()
    assert np.abs(Session(root / f"{name}.anan.onnx").predict(x) - base_out).max() > 1e-3


def test_target_names_the_keras_layer_and_the_preprocessing(preprocessed):
    root, paths = preprocessed
    result = convert_file(paths["given"], root / "first.anan.onnx", AnanParams())
    meta = Session(root / "first.anan.onnx").metadata
    assert meta["target_keras_layer"] == "stem_conv"
    # Keras numbers unnamed layers per process ('rescaling', 'rescaling_1', ...)
    model = keras.models.load_model(paths["given"], compile=False)
    rescaling, normalization = (
        next(layer.name for layer in model.layers if type(layer).__name__ == kind)
        for kind in ("Rescaling", "Normalization")
    )
    assert meta["target_reason"] == (
        f"the first Conv in topological order, after Rescaling '{rescaling}', Normalization "
        f"'{normalization}', ZeroPadding2D 'stem_pad'; put in canonical form: "
        "Mul 'stem_conv/unfolded/mul', Add 'stem_conv/unfolded/add'"
    )  # stem_bn, which TensorFlow folded and the exporter unfolded, is folded again
    assert "keras_convs" not in meta  # the map stays in the base model
    assert result.target_layer == "stem_conv/convolution"  # the restored (unfolded) Conv


@pytest.mark.parametrize("layer", ["stem_conv", "stem_conv_1"])
def test_layer_takes_the_keras_name(preprocessed, layer):
    """``stem_conv`` and ``stem_conv_1`` both match ``.../stem_conv_1/...`` by name alone."""
    root, paths = preprocessed
    out = root / f"{layer}.anan.onnx"
    result = convert_file(paths["given"], out, AnanParams(a=1.5), layer=layer)
    model = keras.models.load_model(paths["given"], compile=False)
    kernel = model.get_layer(layer).get_weights()[0].transpose(3, 2, 0, 1)
    import onnx_ir as ir

    from anan_onnx.rewrite.target import find_target

    target = find_target(ir.from_proto(result.base).graph, result.target_layer)
    # the named layer's kernel, times the per-kernel factor of a BatchNormalization after
    # it that the canonical form folds in (stem_conv's stem_bn; none after stem_conv_1)
    factor = target.weight.reshape(len(kernel), -1) / kernel.reshape(len(kernel), -1)
    np.testing.assert_allclose(factor, factor[:, :1] * np.ones_like(factor), rtol=1e-5)
    assert Session(out).metadata["target_keras_layer"] == layer
    assert Session(out).metadata["target_reason"].startswith(f"named by --layer {layer!r}")
    assert verify_models(result.anan, result.base, n=6).passed


def test_layer_matching_several_convs_lists_only_those(preprocessed):
    from anan_onnx import AnanError

    root, paths = preprocessed
    with pytest.raises(AnanError, match="'sep' matches 2 Conv nodes") as info:
        convert_file(paths["given"], root / "sep.anan.onnx", AnanParams(), layer="sep")
    assert "stem_conv" not in str(info.value), "the message lists Convs that do not match"


def test_two_image_model_refused_naming_its_inputs(tmp_path):
    from anan_onnx import AnanError

    image, mask = keras.Input(SIZE, name="image"), keras.Input(SIZE, name="mask")
    x = keras.layers.Conv2D(2, 3)(keras.layers.Multiply()([image, mask]))
    path = tmp_path / "two.keras"
    keras.Model([image, mask], keras.layers.Flatten()(x)).save(path)
    with pytest.raises(AnanError, match=r"2 inputs of its own \('image', 'mask'\)"):
        convert_file(path, tmp_path / "two.anan.onnx", AnanParams())
