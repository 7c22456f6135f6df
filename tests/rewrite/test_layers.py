"""Astrocytes on several Convs (``--layers``): the graph equals the literal multi-layer loop."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from anan_onnx import AnanParams, LiteralReference, convert_model
from anan_onnx.errors import AnanError
from anan_onnx.options import ConvertOptions
from anan_onnx.reference.verify import target_layer
from anan_onnx.testing import build_base_cnn

from equivalence import assert_matches_reference, run_onnx

SIZE = 32


@pytest.fixture(scope="module")
def base() -> onnx.ModelProto:
    """Three Conv → ReLU → MaxPool blocks: every layer takes the pool-commuted route."""
    return build_base_cnn(SIZE, 3, (4, 6, 8), dense=8, seed=3)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (6, SIZE, SIZE, 3)).astype(np.float32)


def _params(rule: str, signal: str, counter: str = "absorbing") -> AnanParams:
    # the additive rule with a >= 1 saturates a three-layer network: small steps
    a, b = (1.5, 0.5) if rule == "multiplicative" else (0.3, 0.2)
    return AnanParams(k=4, mu=2, a=a, b=b, rule=rule, signal=signal, counter=counter)


@pytest.mark.parametrize("layers", ["all", "first:2", "conv3,conv1"])
@pytest.mark.parametrize("signal", ["pre", "post"])
@pytest.mark.parametrize("rule", ["multiplicative", "additive"])
def test_layers_match_the_literal_loop(base, images, rule, signal, layers):
    params = _params(rule, signal)
    ours, ref = assert_matches_reference(base, params, images, len(images), layers=layers)
    base_out = run_onnx(base, images)
    single = run_onnx(convert_model(base, params).anan, images)
    assert np.abs(ours - base_out).max() > 1e-3, "ANAN on several layers changed nothing"
    # the later layers are modulated too: the output is not the first layer's alone
    assert np.abs(ours - single).max() > 1e-3


@pytest.mark.parametrize(
    "options",
    [{"batch": 6}, {"fold_steps": True}, {"scaling": "broadcast"}],
    ids=["grouped", "folded", "broadcast"],
)
def test_layers_on_every_route(base, images, options):
    params = _params("multiplicative", "pre", counter="absorbing")
    assert_matches_reference(base, params, images, len(images), layers="all", **options)


def test_clamp_counter_on_several_layers(base, images):
    assert_matches_reference(
        base, _params("additive", "pre", "clamp"), images, len(images), layers="conv1,conv2"
    )


def test_order_is_sequential_in_the_reference(base, images):
    """Layer 2's presentations see layer 1 modulated: not the same as modulating layer 2
    on the trained network and then layer 1."""
    converted = convert_model(base, AnanParams(k=4, mu=2, a=1.5, b=0.5), layers="first:2")
    params = converted.params
    both = LiteralReference(converted.base, ["conv1", "conv2"], params).run(images)
    first = LiteralReference(converted.base, "conv1", params).run(images)
    second = LiteralReference(converted.base, "conv2", params).run(images)
    assert np.abs(both.outputs[0] - first.outputs[0]).max() > 1e-3
    assert np.abs(both.outputs[0] - second.outputs[0]).max() > 1e-3


def test_names_have_one_prefix_per_layer(base):
    anan = convert_model(base, AnanParams(), layers="all").anan
    names = [n.name for n in anan.graph.node]
    assert len(names) == len(set(names)), "node names repeat"
    inits = [i.name for i in anan.graph.initializer]
    assert len(inits) == len(set(inits)), "initializer names repeat"
    for prefix in ("anan/L2/", "anan/L3/"):
        assert any(n.startswith(prefix) for n in names), prefix
    single = convert_model(base, AnanParams()).anan
    assert not any(n.name.startswith("anan/L") for n in single.graph.node)


def test_one_named_layer_is_the_single_layer_graph(base):
    """``--layers conv2`` writes the graph ``--layer conv2`` writes, byte for byte."""
    one = convert_model(base, AnanParams(), layers="conv2").anan
    same = convert_model(base, AnanParams(), layer="conv2").anan
    assert one.graph.SerializeToString() == same.graph.SerializeToString()


def test_metadata_records_the_layers(base):
    converted = convert_model(base, AnanParams(), layers="conv2,conv1")
    meta = {p.key: p.value for p in converted.anan.metadata_props}
    assert json.loads(meta["anan.target_layers"]) == ["conv1", "conv2"]
    assert meta["anan.target_layer"] == "conv1"
    stripped = {k[len("anan.") :]: v for k, v in meta.items()}
    assert target_layer(stripped) == ["conv1", "conv2"]
    single = convert_model(base, AnanParams()).anan
    assert "anan.target_layers" not in {p.key for p in single.metadata_props}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layers": "first:9"}, "only 3 Convs"),
        ({"layers": "conv1,nope"}, "no Conv node named 'nope'"),
        ({"layers": "conv1,conv1"}, "twice"),
        ({"layers": "all", "layer": "conv1"}, "both given"),
        ({"layers": "all", "tunable": True}, "--tunable takes one target layer"),
    ],
)
def test_bad_layers_are_refused(base, fields, message):
    with pytest.raises(AnanError, match=message):
        convert_model(base, AnanParams(), **fields)


@pytest.mark.parametrize("value", ["first:0", "first:x", " , "])
def test_bad_layers_option(value):
    with pytest.raises(AnanError, match="layers"):
        ConvertOptions(layers=value)


def test_damaged_target_layers_are_refused():
    with pytest.raises(AnanError, match="target_layers"):
        target_layer({"target_layer": "conv1", "target_layers": "conv1"})


@pytest.mark.integration
@pytest.mark.parametrize(("rule", "a", "b"), [("multiplicative", 1.2, 0.3), ("additive", 0.2, 0.2)])
def test_bundled_model_on_every_layer_matches_the_literal_loop(anan_model, rule, a, b):
    """The bundled Cats&Dogs CNN (tf2onnx NHWC graph, Conv → Relu → MaxPool × 3) with
    astrocytes on all three Convs, against the literal loop on real-range inputs."""
    base = onnx.load(anan_model.with_name("model.base.onnx"))
    params = AnanParams(k=4, mu=2, a=a, b=b, rule=rule)  # additive a >= 1 saturates the CNN
    x = np.random.default_rng(2).uniform(0, 1, (4, 128, 128, 3)).astype(np.float32)
    ours, _ = assert_matches_reference(base, params, x, 3, layers="all")
    single = run_onnx(convert_model(base, params).anan, x)
    assert np.abs(ours - single).max() > 1e-4, "the deeper layers changed nothing"
