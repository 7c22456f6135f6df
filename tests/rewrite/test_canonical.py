"""The astrocyte signal is a function of the network, not of its serialisation.

Equivalent ONNX serialisations of one small CNN (the Conv's bias fused or in an ``Add``/``Sub``,
a BatchNormalization or per-channel ``Mul``/``Div``/``Add`` scale-shift after it or folded, NCHW
or tf2onnx-style NHWC with layout Transposes) must give the same ANAN model outputs, equal to
the literal loop on the canonical form (:mod:`anan_onnx.canonical`), for both signals and both
rules; the canonical base computes what the original does.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from anan_onnx import AnanParams, LiteralReference, convert_model, verify_models
from anan_onnx.canonical import canonical_model, canonicalise_conv

from equivalence import TOLERANCE, assert_matches_reference, run_onnx

OUT, C, SIZE, EPS = 4, 2, 7, 1e-3
#: ops that may sit between the Conv and its activation; "sub_from" is ``c - y``
OPS = ("add", "sub", "sub_from", "mul", "div", "bn")
PARAMS = {
    (signal, rule): AnanParams(k=3, mu=1, a=1.5, b=0.5, rule=rule, signal=signal)
    for signal in ("pre", "post")
    for rule in ("multiplicative", "additive")
}


@dataclasses.dataclass(frozen=True)
class Form:
    """One serialisation: ops after the Conv in NCHW, then (NHWC only) after its Transpose."""

    seed: int = 0
    conv_bias: bool = True
    nchw_ops: tuple[str, ...] = ()
    nhwc_ops: tuple[str, ...] = ()
    nhwc: bool = False
    activation: str = "Relu"


def _canonical_weights(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's mathematics: canonical kernel, bias and dense head."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(OUT, C, 3, 3)).astype(np.float32)
    b = (rng.normal(size=OUT) * 0.5).astype(np.float32)
    dense = (rng.normal(size=(OUT, 3)) * 0.2).astype(np.float32)  # logits of order 1
    return w, b, dense


def _op_constants(op: str, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Per-channel constants of one op (float64); factors stay away from 0."""
    factor = rng.uniform(0.5, 2.0, OUT) * rng.choice([-1.0, 1.0], OUT)
    if op == "bn":
        return factor, rng.normal(size=OUT), rng.normal(size=OUT), rng.uniform(0.2, 2.0, OUT)
    return (factor,) if op in ("mul", "div") else (rng.normal(size=OUT),)


def _undo(op: str, consts: tuple[np.ndarray, ...], w: np.ndarray, b: np.ndarray):
    """(W, b) of the Conv before ``op`` such that op(conv(x, W) + b) = conv(x, w) + b_out."""
    if op == "add":
        return w, b - consts[0]
    if op == "sub":
        return w, b + consts[0]
    if op == "sub_from":
        return -w, consts[0] - b
    if op == "mul":
        return w / consts[0][:, None, None, None], b / consts[0]
    if op == "div":
        return w * consts[0][:, None, None, None], b * consts[0]
    gamma, beta, mean, var = consts
    f = gamma / np.sqrt(var + EPS)
    return w / f[:, None, None, None], (b - beta) / f + mean


def _op_nodes(op, consts, x, out, i, shape, inits):
    """Nodes of one op reading ``x`` and writing ``out``; constants shaped ``shape``."""
    names = [f"{op}{i}_c{j}" for j in range(len(consts))]
    shape = (OUT,) if op == "bn" else shape
    for name, c in zip(names, consts, strict=True):
        inits.append(numpy_helper.from_array(c.astype(np.float32).reshape(shape), name))
    if op == "bn":
        return [
            helper.make_node("BatchNormalization", [x, *names], [out], name=f"bn{i}", epsilon=EPS)
        ]
    onnx_op = {"add": "Add", "sub": "Sub", "sub_from": "Sub", "mul": "Mul", "div": "Div"}[op]
    inputs = [names[0], x] if op == "sub_from" else [x, names[0]]
    return [helper.make_node(onnx_op, inputs, [out], name=f"{op}{i}")]


def build(form: Form) -> onnx.ModelProto:
    """The network of ``form.seed`` serialised as ``form`` describes."""
    w, b, dense = _canonical_weights(form.seed)
    rng = np.random.default_rng(zlib.crc32(repr(form).encode()))  # same form, same model
    ops = [*form.nchw_ops, *form.nhwc_ops]
    consts = [_op_constants(op, rng) for op in ops]
    w64, b64 = w.astype(np.float64), b.astype(np.float64)
    for op, c in reversed(list(zip(ops, consts, strict=True))):
        w64, b64 = _undo(op, c, w64, b64)
    inits = [numpy_helper.from_array(w64.astype(np.float32), "W")]
    if not form.conv_bias:  # the bias as the first op after the Conv (MNIST-8 style)
        ops, consts, b64 = ["add", *ops], [(b64,), *consts], None
    conv_inputs = ["x_nchw" if form.nhwc else "x", "W"]
    if b64 is not None:
        inits.append(numpy_helper.from_array(b64.astype(np.float32), "B"))
        conv_inputs.append("B")
    nodes = []
    if form.nhwc:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]))
    nodes.append(helper.make_node("Conv", conv_inputs, ["y0"], name="conv", pads=[1] * 4))
    split = len(ops) - len(form.nhwc_ops)
    y = "y0"
    for i, (op, c) in enumerate(zip(ops, consts, strict=True)):
        if form.nhwc and i == split:
            nodes.append(helper.make_node("Transpose", [y], ["t"], perm=[0, 2, 3, 1], name="t"))
            y = "t"
        shape = (OUT,) if form.nhwc and i >= split else (OUT, 1, 1)
        nodes += _op_nodes(op, c, y, f"y{i + 1}", i, shape, inits)
        y = f"y{i + 1}"
    if form.nhwc and split == len(ops):
        nodes.append(helper.make_node("Transpose", [y], ["t"], perm=[0, 2, 3, 1], name="t"))
        y = "t"
    nodes.append(helper.make_node(form.activation, [y], ["act"], name="act"))
    y = "act"
    if form.nhwc:
        nodes.append(helper.make_node("Transpose", [y], ["back"], perm=[0, 3, 1, 2], name="back"))
        y = "back"
    inits.append(numpy_helper.from_array(dense, "dense"))
    nodes += [
        helper.make_node("GlobalAveragePool", [y], ["pooled"], name="gap"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "dense"], ["logits"], name="head"),
    ]
    shape = ["N", SIZE, SIZE, C] if form.nhwc else ["N", C, SIZE, SIZE]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def inputs(form: Form, n: int = 6) -> np.ndarray:
    x = np.random.default_rng(7).normal(size=(n, C, SIZE, SIZE)).astype(np.float32)
    return x.transpose(0, 2, 3, 1).copy() if form.nhwc else x


@functools.cache
def fused_outputs(seed: int, signal: str, rule: str, activation: str):
    """ANAN outputs of the fused NCHW form, the images free of near-ties, and base outputs."""
    form = Form(seed=seed, activation=activation)
    base, x, params = build(form), inputs(form), PARAMS[signal, rule]
    conversion = convert_model(base, params)
    ref = LiteralReference(conversion.base, conversion.target_layer, params).run(x)
    return run_onnx(conversion.anan, x), ~ref.near_tie, run_onnx(base, x)


def test_mnist8_style_bias_add_gives_the_fused_model():
    """The issue's case: Conv without bias + Add, against the Conv with the bias inside;
    the literal loop given the original serialisation watches the same signal."""
    form = Form(conv_bias=False)
    model, x = build(form), inputs(form)
    for (signal, rule), params in PARAMS.items():
        ours, ref = assert_matches_reference(model, params, x)
        fused, keep, base_out = fused_outputs(0, signal, rule, "Relu")
        assert keep.sum() >= 3
        np.testing.assert_allclose(ours[keep], fused[keep], atol=TOLERANCE, rtol=0)
        assert np.abs(fused - base_out).max() > 1e-2, "ANAN changed nothing"
        original = LiteralReference(model, "conv", params).run(x)
        np.testing.assert_allclose(original.outputs[0], ref.outputs[0], atol=TOLERANCE, rtol=0)


def test_verify_against_the_original_serialisation_passes():
    """``verify`` given the user's own (non-canonical) base agrees with the ANAN model."""
    model = build(Form(conv_bias=False, nchw_ops=("mul",)))
    conversion = convert_model(model, PARAMS["post", "additive"])
    report = verify_models(conversion.anan, model, inputs=inputs(Form()))
    assert report.passed and report.compared >= 3, report.summary()


@st.composite
def forms(draw) -> Form:
    nhwc = draw(st.booleans())
    ops = st.lists(st.sampled_from(OPS), max_size=2).map(tuple)
    after = st.lists(st.sampled_from(OPS[:-1]), max_size=2).map(tuple)  # BN reads axis 1
    return Form(
        seed=draw(st.integers(0, 1)),
        conv_bias=draw(st.booleans()),
        nchw_ops=draw(ops),
        nhwc_ops=draw(after) if nhwc else (),
        nhwc=nhwc,
        activation=draw(st.sampled_from(["Relu", "LeakyRelu"])),
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form=forms())
def test_equivalent_serialisations_give_the_same_anan_model(form):
    model, x = build(form), inputs(form)
    base_out = run_onnx(model, x)
    for (signal, rule), params in PARAMS.items():
        fused, keep, fused_base = fused_outputs(form.seed, signal, rule, form.activation)
        np.testing.assert_allclose(base_out, fused_base, atol=TOLERANCE, rtol=0)  # the builder
        conversion = convert_model(model, params)
        # the canonical base written beside the ANAN model computes what the original does
        np.testing.assert_allclose(run_onnx(conversion.base, x), base_out, atol=TOLERANCE, rtol=0)
        ours = run_onnx(conversion.anan, x)
        assert keep.sum() >= 3, "too many near-ties to compare"
        np.testing.assert_allclose(ours[keep], fused[keep], atol=TOLERANCE, rtol=0)
        ref = LiteralReference(conversion.base, conversion.target_layer, params).run(x)
        same = keep & ~ref.near_tie
        np.testing.assert_allclose(ours[same], ref.outputs[0][same], atol=TOLERANCE, rtol=0)
        assert np.abs(ours - base_out).max() > 1e-2, "ANAN changed nothing"


def test_canonical_base_lists_what_it_folded():
    form = Form(conv_bias=False, nchw_ops=("bn",), nhwc_ops=("mul",), nhwc=True)
    conversion = convert_model(build(form), PARAMS["post", "additive"])
    ops = [n.op_type for n in conversion.base.graph.node]
    assert ops[:4] == ["Transpose", "Conv", "Relu", "Transpose"], ops
    names = {i.name for i in conversion.base.graph.initializer}
    assert not names & {"W", "add0_c0", "bn1_c0", "mul2_c0"}, "folded constants left behind"
    meta = {p.key: p.value for p in conversion.anan.metadata_props}
    reason = meta["anan.target_reason"]
    assert "canonical form: Add 'add0', BatchNormalization 'bn1', Mul 'mul2' (across " in reason
    assert "Relu 'act' moved before Transpose 't'" in reason


def _conv_then(make_nodes, inits=()):
    """x -> Conv(W, B) -> the nodes of ``make_nodes('y')`` -> output 'out' (NCHW, 4 kernels)."""
    w, b, _ = _canonical_weights(0)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv"), *make_nodes("y")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, SIZE, SIZE])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B"), *inits],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


UNFOLDABLE = {
    "spatial constant": (
        lambda y: [helper.make_node("Add", [y, "c"], ["out"])],
        [_const("c", np.ones((1, 1, SIZE - 2, SIZE - 2)))],
    ),
    "constant over the batch": (
        lambda y: [helper.make_node("Mul", [y, "c"], ["out"])],
        [_const("c", np.ones((2, OUT, 1, 1)))],
    ),
    "(channels,) on the width axis": (
        lambda y: [helper.make_node("Mul", [y, "c"], ["out"])],
        [_const("c", np.arange(1, OUT + 1))],
    ),
    "divided by zero": (
        lambda y: [helper.make_node("Div", [y, "c"], ["out"])],
        [_const("c", np.array([1.0, 0.0, 1.0, 1.0]).reshape(OUT, 1, 1))],
    ),
    "constant divided by the map": (
        lambda y: [helper.make_node("Div", ["c", y], ["out"])],
        [_const("c", np.ones((OUT, 1, 1)))],
    ),
    "non-finite constant": (
        lambda y: [helper.make_node("Mul", [y, "c"], ["out"])],
        [_const("c", np.array([1.0, np.inf, 1.0, 1.0]).reshape(OUT, 1, 1))],
    ),
    "map added to itself": (lambda y: [helper.make_node("Add", [y, y], ["out"])], []),
    "two readers": (
        lambda y: [
            helper.make_node("Add", [y, "c"], ["a"]),
            helper.make_node("Relu", [y], ["r"]),
            helper.make_node("Add", ["a", "r"], ["out"]),
        ],
        [_const("c", np.ones((OUT, 1, 1)))],
    ),
    "Transpose then Flatten": (
        lambda y: [
            helper.make_node("Transpose", [y], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("Flatten", ["t"], ["out"]),
        ],
        [],
    ),
}


@pytest.mark.parametrize("case", list(UNFOLDABLE))
def test_what_is_not_exactly_foldable_is_left_alone(case):
    make_nodes, inits = UNFOLDABLE[case]
    model = _conv_then(make_nodes, inits)
    same, changes = canonical_model(model, "conv")
    assert changes == [] and same is model


def test_the_conv_output_keeps_the_graph_output_name():
    model = _conv_then(
        lambda y: [helper.make_node("Add", [y, "c"], ["out"], name="bias")],
        [_const("c", np.full((1, OUT, 1, 1), 0.25))],
    )
    canonical, changes = canonical_model(model, "conv")
    assert changes == ["Add 'bias'"]
    assert [n.op_type for n in canonical.graph.node] == ["Conv"]
    assert canonical.graph.node[0].output[0] == canonical.graph.output[0].name == "out"
    x = inputs(Form())
    np.testing.assert_allclose(run_onnx(canonical, x), run_onnx(model, x), atol=1e-6)


def test_a_canonical_graph_is_unchanged():
    model = ir.from_proto(build(Form()))
    before = ir.to_proto(model).SerializeToString()
    assert canonicalise_conv(model.graph, next(n for n in model.graph if n.op_type == "Conv")) == []
    assert ir.to_proto(model).SerializeToString() == before


@pytest.mark.parametrize("signal", ["pre", "post"])
def test_tune_fast_grid_scores_the_canonical_form(signal):
    """``tune``/``evaluate``'s fast grid, given a non-canonical serialisation, predicts what the
    ANAN model of the fused network does."""
    from anan_onnx.evaluation.fastgrid import FastGrid, GridPoint

    params = PARAMS[signal, "multiplicative"]
    form = Form(conv_bias=False, nchw_ops=("bn",), nhwc_ops=("sub",), nhwc=True)
    point = GridPoint(params.k, params.mu, params.a, params.b)
    (probs,) = FastGrid(build(form), params).predict(inputs(form), [point], progress=False)
    fused, keep, _ = fused_outputs(0, signal, "multiplicative", "Relu")
    np.testing.assert_allclose(probs[keep], fused[keep], atol=TOLERANCE, rtol=0)
