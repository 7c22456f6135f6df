"""Conversion: sources of weights, opsets, metadata, node names, layer choice, validation."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from anan_onnx import AnanError, AnanParams, convert_file, convert_model, verify_models
from anan_onnx.metadata import read_metadata
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

from equivalence import assert_matches_reference, run_onnx


def _ir3_model() -> onnx.ModelProto:
    """CNTK-era style: IR 3, opset 8, weights also listed as graph inputs, SAME_UPPER."""
    model = build_cnn(VARIANTS["plain"], opset=8)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    del conv.attribute[:]
    conv.attribute.extend(
        [
            helper.make_attribute("auto_pad", "SAME_UPPER"),
            helper.make_attribute("kernel_shape", [3, 3]),
        ]
    )
    for init in model.graph.initializer:
        model.graph.input.append(
            helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
        )
    model.ir_version = 3
    return model


def test_ir3_graph_input_weights(tmp_path):
    src = tmp_path / "cntk.onnx"
    onnx.save(_ir3_model(), src)
    result = convert_file(src, tmp_path / "m.anan.onnx", AnanParams(rule="additive", a=1.5))
    assert {o.version for o in result.anan.opset_import if o.domain == ""} == {13}
    report = verify_models(tmp_path / "m.anan.onnx", tmp_path / "m.base.onnx", n=8)
    assert report.passed, report.summary()


def test_metadata_and_names(tmp_path):
    src = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), src)
    params = AnanParams(k=5, mu=3, a=1.2, b=0.35, rule="additive", counter="clamp")
    result = convert_file(src, tmp_path / "out" / "cnn.anan.onnx", params)
    saved = onnx.load(tmp_path / "out" / "cnn.anan.onnx")
    meta = read_metadata(saved)
    assert AnanParams.from_strings(meta) == params
    assert meta["target_layer"] == "conv1" == result.target_layer
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["tool_version"] and meta["base_model"] == "cnn.base.onnx"
    assert (meta["layout"], meta["height"], meta["channels"]) == ("NCHW", "11", "3")
    names = {n.name for n in saved.graph.node}
    assert {"anan/step3/counter", "anan/step5/gain_pos", "anan/output"} <= names
    onnx.checker.check_model(saved, full_check=True)


@pytest.mark.parametrize("rule, convs", [("multiplicative", 1), ("additive", 2)])
@pytest.mark.parametrize("k", [1, 8])
def test_steps_never_rerun_a_convolution(rule, convs, k):
    """Convolutions over the image: one per weight part, whatever k (the kernel means are
    small convolutions over the input's window sums, anan/means/*, not over the image)."""
    anan = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=k, mu=1, rule=rule)).anan
    over_image = [n for n in anan.graph.node if n.op_type == "Conv" and n.input[0] == "x"]
    assert len(over_image) == convs


def _two_conv_model() -> onnx.ModelProto:
    model = build_cnn(VARIANTS["plain"])
    graph = model.graph
    w2 = np.random.default_rng(5).normal(size=(6, 6, 3, 3)).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(w2, "W2"))
    act = next(n for n in graph.node if n.op_type == "Relu")
    act.output[0] = "act1_out"
    extra = [
        helper.make_node(
            "Conv",
            ["act1_out", "W2"],
            ["conv2_out"],
            name="model/conv2d_1_1/conv",
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["conv2_out"], ["act_out"], name="act2"),
    ]
    index = list(graph.node).index(act) + 1
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes[:index] + extra + nodes[index:])
    return model


@pytest.mark.parametrize(
    "layer, expected",
    [
        (None, "conv1"),
        ("conv1", "conv1"),
        ("model/conv2d_1_1/conv", "model/conv2d_1_1/conv"),
        ("conv2d_1", "model/conv2d_1_1/conv"),  # a Keras layer name matches tf2onnx's node name
    ],
)
def test_layer_choice(layer, expected):
    base = _two_conv_model()
    params = AnanParams(k=3, mu=1, a=1.5, b=0.5)
    ours, _ = assert_matches_reference(
        base, params, random_batch(VARIANTS["plain"], 4), layer=layer
    )
    assert convert_model(base, params, layer=layer).target_layer == expected


def test_unknown_layer_lists_the_choices():
    with pytest.raises(AnanError, match="no Conv node named 'nope'.*conv1"):
        convert_model(_two_conv_model(), AnanParams(), layer="nope")


def test_nodes_out_of_topological_order_are_sorted():
    base = build_cnn(VARIANTS["plain"])
    nodes = list(base.graph.node)
    random.Random(0).shuffle(nodes)
    del base.graph.node[:]
    base.graph.node.extend(nodes)
    assert_matches_reference(base, AnanParams(a=1.5), random_batch(VARIANTS["plain"], 4))


def test_model_without_conv_is_refused():
    base = build_cnn(VARIANTS["plain"])
    graph = base.graph
    conv = next(n for n in graph.node if n.op_type == "Conv")
    conv.op_type, conv.input[:] = "Identity", ["x"]
    del conv.attribute[:]
    with pytest.raises(AnanError, match="no float Conv"):
        convert_model(base, AnanParams())


def test_weights_computed_at_run_time_are_refused():
    base = build_cnn(VARIANTS["plain"])
    conv = next(n for n in base.graph.node if n.op_type == "Conv")
    base.graph.node.insert(0, helper.make_node("Neg", ["W"], ["W_neg"], name="neg"))
    conv.input[1] = "W_neg"
    base.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [6, 3, 3, 3]))
    base.graph.initializer.pop(0)
    with pytest.raises(AnanError, match="computed at run time"):
        convert_model(base, AnanParams())


def test_post_signal_without_activation_is_refused():
    base = build_cnn(VARIANTS["plain"], activation="Relu")
    act = next(n for n in base.graph.node if n.op_type == "Relu")
    act.op_type = "Identity"
    with pytest.raises(AnanError, match="signal=post needs one activation"):
        convert_model(base, AnanParams(signal="post"))


def test_converting_an_anan_model_is_refused():
    anan = convert_model(build_cnn(VARIANTS["plain"]), AnanParams()).anan
    with pytest.raises(AnanError, match="already an ANAN model"):
        convert_model(anan, AnanParams())


@pytest.mark.parametrize(
    ("built", "requested", "expected"),
    [(13, None, 13), (15, None, 15), (18, None, 18), (13, 18, 18)],
)
def test_opsets(tmp_path, built, requested, expected):
    src = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"], opset=built), src)
    result = convert_file(src, tmp_path / "m.anan.onnx", AnanParams(a=1.5), opset=requested)
    assert [o.version for o in result.anan.opset_import if o.domain == ""] == [expected]
    assert verify_models(result.anan, result.base, n=6).passed


def test_opset_out_of_range_is_refused(tmp_path):
    src = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), src)
    with pytest.raises(AnanError, match="opset 19 is not supported"):
        convert_file(src, tmp_path / "m.anan.onnx", AnanParams(), opset=19)


def test_simplify_keeps_results(tmp_path):
    src = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), src)
    plain = convert_file(src, tmp_path / "a.anan.onnx", AnanParams(rule="additive"))
    slim = convert_file(src, tmp_path / "b.anan.onnx", AnanParams(rule="additive"), simplify=True)
    x = random_batch(VARIANTS["plain"], 5)
    np.testing.assert_allclose(run_onnx(slim.anan, x), run_onnx(plain.anan, x), atol=1e-6)
    assert read_metadata(slim.anan)["k"] == "4"


GRID = [
    (k, mu, a, b, idle)
    for k in (1, 4, 8)
    for mu in (1, 2, 4)
    for a in (1.05, 1.5)
    for b in (0.05, 0.5)
    for idle in (0.0, 1.0)
]


def test_session_feeds_the_parameters_of_a_tunable_export():
    from anan_onnx import AnanError, Session

    base = build_cnn(VARIANTS["plain"], seed=2)
    x = random_batch(VARIANTS["plain"], 4, seed=4)
    session = Session(convert_model(base, AnanParams(), tunable=True, k_max=6).anan)
    assert set(session.parameter_inputs) == {"anan_k", "anan_mu", "anan_a", "anan_b", "anan_idle"}
    fixed = run_onnx(convert_model(base, AnanParams(k=5, mu=1, a=1.5, b=0.5)).anan, x)
    ours = session.run(x, anan_k=5, anan_mu=1, anan_a=1.5, anan_b=0.5)[0]
    np.testing.assert_allclose(ours, fixed, atol=1e-6)
    with pytest.raises(AnanError, match="no parameter input 'anan_q'"):
        session.run(x, anan_q=1.0)


@pytest.mark.filterwarnings("ignore:mu=.*never trigger")
@pytest.mark.parametrize("rule", ["multiplicative", "additive"])
def test_tunable_export_equals_fixed_exports(rule):
    base = build_cnn(VARIANTS["plain"], seed=2)
    x = random_batch(VARIANTS["plain"], 6, seed=4)
    tunable = convert_model(base, AnanParams(rule=rule), tunable=True, k_max=8).anan
    for k, mu, a, b, idle in GRID:
        params = AnanParams(k=k, mu=mu, a=a, b=b, idle=idle, rule=rule)
        fixed = run_onnx(convert_model(base, params).anan, x)
        ours = run_onnx(tunable, x, anan_k=k, anan_mu=mu, anan_a=a, anan_b=b, anan_idle=idle)
        np.testing.assert_allclose(ours, fixed, atol=1e-6, err_msg=str(params))


@pytest.mark.parametrize(
    ("pool", "exposed", "shape"),
    [
        (None, "act_out", [6, 11, 11]),
        ("max", "act_out", [6, 5, 5]),
        (None, "conv_out", [6, 11, 11]),
    ],
)
def test_the_layer_output_may_be_a_graph_output(pool, exposed, shape):
    """A model that also returns the modulated layer's output (e.g. for inspection)."""
    base = build_cnn(VARIANTS["plain"], pool=pool, seed=2)
    base.graph.output.append(
        helper.make_tensor_value_info(exposed, TensorProto.FLOAT, ["N", *shape])
    )
    assert_matches_reference(base, AnanParams(k=3, mu=2), random_batch(VARIANTS["plain"], 4))
    anan = convert_model(base, AnanParams(k=3, mu=2)).anan
    assert [o.name for o in anan.graph.output] == ["probs", exposed]
