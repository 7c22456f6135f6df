"""The portable steps (``portable_steps``) = eqs. 1–3 of the spec, and portable indeed."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from anan_onnx import AnanParams, convert_model, read_metadata
from anan_onnx.rewrite.builder import GraphBuilder
from anan_onnx.rewrite.portable_steps import (
    Knobs,
    exact_step,
    final_gains,
    fires,
    fixed_knobs,
    general_steps,
    shared_steps,
    trigger_value,
)
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

from equivalence import assert_matches_reference

F32 = np.dtype(np.float32)
OPTIONS = list(
    itertools.product(range(1, 5), ("absorbing", "clamp"), ("multiplicative", "additive"))
)


def _spec_step(r: int, u: int, params: AnanParams) -> tuple[int, float]:
    """One step as the spec words it: eq. 2 (counter), then eq. 3 with the update rule."""
    mu = params.mu
    if params.counter == "absorbing":
        r = r if abs(r) == mu else r + u
    else:
        r = min(max(r + u, -mu), mu)
    if params.rule == "multiplicative":
        value = params.a if r == mu else (1 - params.b) if r == -mu else 1.0
    else:
        value = params.a if r == mu else -params.b if r == -mu else params.idle
    return r, value


def _spec_gains(signs, params: AnanParams, steps: int) -> np.ndarray:
    """The spec's loop on one weight of each sign (float32): the gains g⁺ (and g⁻)."""
    r, weights = 0, np.array([1.0, -1.0], np.float32)
    for f in signs[:steps]:
        r, value = _spec_step(r, 1 if f else -1, params)
        value = np.float32(value)
        if params.rule == "multiplicative":
            weights = weights * value
        else:
            weights = weights + np.abs(weights) * value
    return weights[:1] if params.rule == "multiplicative" else np.array([weights[0], -weights[1]])


def _value(name: str, shape: list[int]) -> ir.Value:
    return ir.Value(name=name, type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape(shape))


def _run(b: GraphBuilder, inputs: list[ir.Value], outputs: list[ir.Value], feeds: dict) -> list:
    """Builds a model of ``b``'s nodes and runs it in onnxruntime."""
    graph = ir.Graph(
        inputs, outputs, nodes=b.nodes, initializers=b.initializers, opset_imports={"": 17}
    )
    proto = ir.to_proto(ir.Model(graph, ir_version=8))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# --------------------------------------------------------------------------- the sign test

TINY = np.finfo(np.float32).smallest_subnormal
BIG = np.finfo(np.float32).max
EDGES = np.array(
    [
        0.0,
        -0.0,
        TINY,
        -TINY,
        2 * TINY,
        1e-38,
        1e-30,
        -1e-30,
        2.0**-24,
        0.5,
        1.0,
        -1.0,
        6.0,
        6.5,
        -6.5,
        1e6,
        1e30,
        -1e30,
        BIG,
        -BIG,
        np.nextafter(np.float32(0), np.float32(1)),
    ],
    np.float32,
)


def test_the_sign_test_is_exact_and_finite_at_edge_values():
    """f = [s > 0] bit for bit for 0, −0, subnormals, 1e±30 and ±float32 max; no
    intermediate value is inf or NaN (GPU shaders need not follow IEEE inf rules)."""
    rng = np.random.default_rng(0)
    s = np.concatenate(
        [EDGES, rng.normal(size=200).astype(np.float32) * 10.0 ** rng.integers(-40, 38, 200)]
    )
    s = s.astype(np.float32)
    b = GraphBuilder(F32)
    x = _value("s", [len(s)])
    fires(b, x, "f")
    everything = [n.outputs[0] for n in b.nodes]
    results = _run(b, [x], everything, {"s": s})
    np.testing.assert_array_equal(results[-1], (s > 0).astype(np.float32))
    assert set(np.unique(results[-1])) <= {0.0, 1.0}
    for value, name in zip(results, [n.name for n in b.nodes], strict=True):
        assert np.isfinite(value).all(), name


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_the_sign_scales_follow_the_dtype(dtype):
    """Mirror of the graph's arithmetic in numpy for each float type: the smallest positive
    value reaches 1, the largest stays finite."""
    from anan_onnx.rewrite.portable_steps import _sign_scales

    first, second = (np.array(v, dtype) for v in _sign_scales(np.dtype(dtype)))
    info = np.finfo(dtype)
    s = np.array([0, info.smallest_subnormal, info.tiny, 1, info.max, -info.max], dtype)
    with np.errstate(over="raise", under="ignore"):
        lifted = np.clip(s, 0, 6) * first
        raised = np.clip(lifted, -1, 1) * second
    np.testing.assert_array_equal(np.clip(raised, -1, 1), (s > 0).astype(dtype))


# --------------------------------------------------------------------------- the steps


def _walk_graph(params: AnanParams, steps: int, knobs_of, feeds_extra: dict | None = None):
    """Final gains of :func:`general_steps` for every sign sequence of length ``steps``,
    one kernel per sequence; the activities are graph inputs (one per step)."""
    signs = np.array(list(itertools.product((0, 1), repeat=steps)))  # (2^steps, steps)
    kernels = len(signs)
    b = GraphBuilder(F32)
    b.unit = b.const("unit", np.ones((1, kernels, 1, 1)))
    inputs = [_value(f"s{t}", [1, kernels, 1, 1]) for t in range(1, steps + 1)]

    def activity_of(gains, tag):
        return inputs[int(tag.removeprefix("anan/step")) - 1]

    extra_inputs, knobs = knobs_of(b)
    gains = [b.unit] * (1 if params.rule == "multiplicative" else 2)
    gains = general_steps(b, knobs, params, activity_of, gains, steps, shared=False)
    # activities: +1/−1 scaled by random magnitudes, some tiny, so the sign test is exercised
    rng = np.random.default_rng(steps)
    magnitude = 10.0 ** rng.integers(-40, 30, signs.shape)
    activity = np.where(signs == 1, magnitude, -magnitude).astype(np.float32)
    feeds = {f"s{t}": activity[:, t - 1].reshape(1, -1, 1, 1) for t in range(1, steps + 1)}
    feeds.update(feeds_extra or {})
    out = _run(b, inputs + extra_inputs, gains, feeds)
    return signs, np.stack([o.reshape(-1) for o in out], axis=1)


@pytest.mark.parametrize(("mu", "counter", "rule"), OPTIONS)
def test_every_sign_walk_follows_the_spec(mu, counter, rule):
    """The counter, trigger and update of every step, for all 2^6 sign sequences."""
    params = AnanParams(k=6, mu=mu, a=1.35, b=0.2, idle=0.5, counter=counter, rule=rule)
    signs, gains = _walk_graph(params, 6, lambda b: ([], fixed_knobs(b, params)))
    for seq, got in zip(signs, gains, strict=True):
        np.testing.assert_array_equal(got, _spec_gains(seq, params, 6), err_msg=str(seq))


@pytest.mark.parametrize(("mu", "counter", "rule"), OPTIONS[::3])
@pytest.mark.parametrize("k", [0, 2, 5])
def test_tunable_knobs_walk_like_the_spec_and_stop_after_k(mu, counter, rule, k):
    """Parameters as graph inputs; steps beyond anan_k change nothing."""
    params = AnanParams(k=5, mu=mu, a=1.5, b=0.35, idle=-0.25, counter=counter, rule=rule)
    names = ("mu", "a", "b", "idle", "k")

    def knobs_of(b):
        values = {n: _value(n, []) for n in names}
        one = b.scalar(1.0)
        zero = b.scalar(0.0)
        inhibit_from = one if rule == "multiplicative" else zero
        knobs = Knobs(
            mu_less_one=b.named("Sub", [values["mu"], one], "mu1"),
            one_less_mu=b.named("Sub", [one, values["mu"]], "one_mu"),
            excite=values["a"],
            inhibit=b.named("Sub", [inhibit_from, values["b"]], "bf"),
            idle=None if rule == "multiplicative" else values["idle"],
            k=values["k"],
        )
        return list(values.values()), knobs

    feeds = {
        n: np.asarray(v, np.float32)
        for n, v in zip(names, (mu, params.a, params.b, params.idle, k), strict=True)
    }
    signs, gains = _walk_graph(params, 5, knobs_of, feeds)
    for seq, got in zip(signs, gains, strict=True):
        np.testing.assert_array_equal(got, _spec_gains(seq, params, k), err_msg=str(seq))


@pytest.mark.filterwarnings("ignore:mu=4 > k=3")
@pytest.mark.parametrize("rule", ["multiplicative", "additive"])
@pytest.mark.parametrize(("k", "mu"), [(1, 1), (4, 2), (8, 3), (3, 4)])
def test_shared_steps_and_final_gains_are_the_spec_walk(rule, k, mu):
    """With one sign for every step (the absorbing counter's shared activity), the unrolled
    shared steps and the folded gains both equal the spec's loop."""
    params = AnanParams(k=k, mu=mu, a=1.35, b=0.2, rule=rule)
    table = final_gains(params, k, F32)
    b = GraphBuilder(F32)
    b.unit = b.const("unit", np.ones((1, 2, 1, 1)))
    s = _value("s", [1, 2, 1, 1])
    gains = [b.unit] * (1 if rule == "multiplicative" else 2)
    gains = shared_steps(b, params, lambda g, tag: s, gains, k)
    out = _run(b, [s], gains, {"s": np.array([-3.0, 2.0], np.float32).reshape(1, 2, 1, 1)})
    unrolled = np.stack([o.reshape(-1) for o in out], axis=1)
    for f in (0, 1):
        expected = _spec_gains([f] * k, params, k)
        np.testing.assert_array_equal(table[f], expected)
        np.testing.assert_array_equal(unrolled[f], expected)


def test_trigger_values():
    params = AnanParams(mu=2, a=1.5, b=0.25)
    assert [trigger_value(params, r) for r in range(-2, 3)] == [0.75, 1.0, 1.0, 1.0, 1.5]
    additive = AnanParams(mu=1, a=1.5, b=0.25, idle=0.5, rule="additive")
    assert [trigger_value(additive, r) for r in (-1, 0, 1)] == [-0.25, 0.5, 1.5]


# --------------------------------------------------------------------------- the graph


@pytest.mark.parametrize("k", [2, 4, 8])
def test_each_step_has_its_nodes_and_few_of_them(k):
    """Unrolled (--no-fold-steps): a gain node per step, and a node count that grows by one
    per step (the gain update with the step's multiplier)."""
    base = build_cnn(VARIANTS["plain"])
    anan = convert_model(base, AnanParams(k=k, mu=1), fold_steps=False).anan
    names = [n.name for n in anan.graph.node]
    assert all(f"anan/step{t}/gain0" in names for t in range(1, k + 1))
    longer = convert_model(base, AnanParams(k=k + 1, mu=1), fold_steps=False).anan
    assert len(longer.graph.node) - len(anan.graph.node) == 1
    folded = convert_model(base, AnanParams(k=k + 1, mu=1)).anan  # the default: folded
    assert not any(n.name.startswith("anan/step2") for n in folded.graph.node)


def test_clamp_recomputes_the_activity_every_step():
    params = AnanParams(k=5, mu=2, counter="clamp")
    anan = convert_model(build_cnn(VARIANTS["plain"]), params).anan
    names = {n.name for n in anan.graph.node}
    assert {f"anan/step{t}/multiplier" for t in range(1, 6)} <= names
    assert {f"anan/step{t}/fired" for t in range(1, 6)} <= names
    assert {f"anan/step{t}/counter" for t in range(1, 6)} <= names


FOLDABLE = [
    AnanParams(k=4, mu=2, a=1.05, b=0.3),
    AnanParams(k=8, mu=3, a=1.5, b=0.5, signal="post"),
    AnanParams(k=5, mu=2, a=1.2, b=0.35, reduce="max"),
    AnanParams(k=6, mu=1, a=1.35, b=0.2, rule="additive"),
    AnanParams(k=1, mu=1, a=1.5, b=0.05),
]


@pytest.mark.parametrize("params", FOLDABLE, ids=lambda p: p.describe())
@pytest.mark.parametrize("batch", [None, 6], ids=["dynamic", "fixed"])
def test_folded_steps_match_the_reference(params, batch):
    base = build_cnn(VARIANTS["plain"], pool="max", seed=7)
    x = random_batch(VARIANTS["plain"], 6)
    assert_matches_reference(base, params, x, batch=batch, fold_steps=True)
    folded = convert_model(base, params, batch=batch, fold_steps=True).anan
    unrolled = convert_model(base, params, batch=batch, fold_steps=False).anan
    assert not any(n.name.endswith(("/counter", "/multiplier", "/z")) for n in folded.graph.node)
    # fewer even at k = 1: f·d + v₋ replaces the branch pair and its MatMul (d is exact here)
    assert len(folded.graph.node) < len(unrolled.graph.node)
    assert not any(n.name.endswith("_branches") for n in folded.graph.node)
    assert read_metadata(folded)["steps"] == "folded"
    assert read_metadata(unrolled)["steps"] == "unrolled"


@pytest.mark.parametrize(
    "params",
    [AnanParams(counter="clamp"), AnanParams(rule="additive", idle=1.0)],
    ids=["clamp", "additive idle 1"],
)
def test_unfoldable_steps_stay_unrolled_with_a_warning(params):
    with pytest.warns(UserWarning, match="fold_steps ignored"):
        anan = convert_model(build_cnn(VARIANTS["plain"]), params, fold_steps=True).anan
    assert read_metadata(anan)["steps"] == "unrolled"
    assert any(n.name == "anan/step1/counter" for n in anan.graph.node)


@pytest.mark.parametrize("opset", [13, 15, 17, 18])
@pytest.mark.parametrize("fold", [False, True])
def test_every_opset_runs_the_steps(opset, fold):
    """The steps (Clip with input bounds, the branch pair, MatMul) and the blocked scaling (Resize,
    Reshape) under every opset."""
    variant = dataclasses.replace(VARIANTS["plain"], out_channels=16)  # blocked scaling too
    base = build_cnn(variant, pool="max", seed=1, opset=opset)
    params = AnanParams(k=5, mu=2, a=1.35, b=0.2)
    assert_matches_reference(base, params, random_batch(variant, 6), fold_steps=fold)
    anan = convert_model(base, params, fold_steps=fold).anan
    assert {o.version for o in anan.opset_import if o.domain == ""} == {opset}


def test_a_tunable_model_keeps_its_arithmetic_steps():
    """Parameters as graph inputs: no constants to fold with, so no folding either."""
    with pytest.warns(UserWarning, match="fold_steps ignored"):
        anan = convert_model(
            build_cnn(VARIANTS["plain"]), AnanParams(), tunable=True, fold_steps=True
        ).anan
    names = {n.name for n in anan.graph.node}
    assert {"anan/step1/counter", "anan/step4/counter", "anan/step4/multiplier"} <= names
    assert {"anan/step4/active"} <= names
    assert not any(n.op_type in ("Gather", "Where", "Less") for n in anan.graph.node)
    assert read_metadata(anan)["steps"] == "unrolled"


def test_every_step_has_its_multiplier_and_gain_update():
    """The unrolled graph (--no-fold-steps) shows the k steps (the absorbing counter shares
    the step-1 activity, so only step 1 has a sign test); each later step's two eq. 3 values
    are its ``multiplier`` constant (counter −min(t, μ), +min(t, μ)); no step is folded into
    another."""
    k, params = 4, AnanParams(k=4, mu=2, a=1.05, b=0.3)
    anan = convert_model(build_cnn(VARIANTS["plain"]), params, fold_steps=False).anan
    ops = {n.name: n.op_type for n in anan.graph.node}
    inits = {i.name: numpy_helper.to_array(i) for i in anan.graph.initializer}
    for t in range(2, k + 1):
        expected = [1.0, 1.0] if t < params.mu else [1 - params.b, params.a]
        np.testing.assert_array_equal(inits[f"anan/step{t}/multiplier"], np.float32(expected))
    # step 1 from the unit gain: its multipliers, signed for the branch that is not taken
    np.testing.assert_array_equal(inits["anan/step1/gain0_signed"], np.float32([-1.0, 1.0]))
    assert [ops[f"anan/step{t}/gain0"] for t in range(1, k + 1)] == ["Add"] + ["Mul"] * (k - 1)
    assert ops["anan/step1/fired"] == "Clip" and ops["anan/gain0_sum"] == "MatMul"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_exact_step_adds_up_exactly_or_is_refused(dtype):
    """d with low + d == high in the dtype's own arithmetic (what the folded graph's Add
    computes for f = 1), or None where no d near high − low gives it."""
    rng = np.random.default_rng(3)
    found = 0
    for low, high in (rng.random((500, 2)) * [[1.0, 2.0]]).astype(dtype):
        step = exact_step(low, high)
        if step is not None:
            found += 1
            assert step.dtype == dtype and low + step == high
    assert found > 400
    assert exact_step(dtype(1000.0), dtype(1e-3)) is None  # 1e-3 is below 1000's ulp


def test_the_default_folded_graph_picks_the_final_gain_by_the_sign():
    """Folded (the default here): g = f·d + v₋ with the final gains of the k steps, so
    f = 0 gives v₋ and f = 1 gives v₊ exactly."""
    params = AnanParams(k=4, mu=2, a=1.05, b=0.3)
    anan = convert_model(build_cnn(VARIANTS["plain"]), params).anan
    ops = {n.name: n.op_type for n in anan.graph.node}
    inits = {i.name: numpy_helper.to_array(i) for i in anan.graph.initializer}
    low, high = final_gains(params, 4, np.dtype(np.float32))[:, 0]
    assert ops["anan/gain0_part"] == "Mul" and ops["anan/gain0"] == "Add"
    assert (
        inits["anan/gain0_low"] == low
        and inits["anan/gain0_low"] + inits["anan/gain0_step"] == high
    )
    assert low == np.float32(0.7) ** 3 and high == np.float32(1.05) ** 3
