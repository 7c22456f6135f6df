"""The fast grid path equals the tunable / fixed ONNX exports and the literal reference."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from anan_onnx import AnanError, AnanParams, LiteralReference, convert_model
from anan_onnx.evaluation.fastgrid import FastGrid, GridPoint, simulate_gains
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

TOLERANCE = 1e-5
PAPER_POINTS = [
    GridPoint(k, mu, a, b)
    for k in range(4, 9)
    for mu in (2, 3, 4)
    for a in (1.05, 1.2, 1.35, 1.5)
    for b in (0.05, 0.2, 0.35, 0.5)
]
# Small grid over everything that changes the path: k below/above μ, b > 1 (negative gains,
# the min-pool branch), b = 1 (zero gains), idle 0 and the paper's printed 1.
SMALL_POINTS = [
    GridPoint(k, mu, a, b, idle)
    for k, mu, a, b, idle in itertools.product(
        (1, 3, 6), (1, 2, 4), (1.05, 1.5), (0.05, 1.0, 1.6), (0.0, 1.0)
    )
]


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the tunable inputs are initializers: ORT warns
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def run_tunable(sess: ort.InferenceSession, x: np.ndarray, point: GridPoint) -> np.ndarray:
    feeds = {
        f"anan_{name}": np.asarray(getattr(point, name), np.float32)
        for name in ("k", "mu", "a", "b", "idle")
    }
    return sess.run(None, {sess.get_inputs()[0].name: x, **feeds})[0]


def pooled_cnn(
    *,
    seed: int = 0,
    activation: str = "Relu",
    pool: dict | None = None,
    bias: bool = True,
    nhwc: bool = False,
    skip: bool = False,
) -> onnx.ModelProto:
    """Conv → activation → MaxPool → Conv → Relu → GAP → dense → sigmoid (the paper's
    block structure), optionally NHWC with a Transpose, or with a skip from the image."""
    rng = np.random.default_rng(seed)
    size = 12
    inits = [
        numpy_helper.from_array(rng.normal(size=(6, 3, 3, 3)).astype(np.float32), "W1"),
        numpy_helper.from_array((rng.normal(size=(5, 6, 3, 3)) * 0.3).astype(np.float32), "W2"),
        numpy_helper.from_array(rng.normal(size=(5, 1)).astype(np.float32), "D"),
    ]
    conv_inputs = ["x", "W1"]
    if bias:
        inits.append(numpy_helper.from_array((rng.normal(size=6) * 0.3).astype(np.float32), "B"))
        conv_inputs.append("B")
    nodes = []
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], name="nchw", perm=[0, 3, 1, 2]))
        conv_inputs[0] = "xt"
    attrs = {"alpha": 0.2} if activation in ("LeakyRelu", "Elu") else {}
    nodes += [
        helper.make_node("Conv", conv_inputs, ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node(activation, ["c1"], ["a1"], name="act1", **attrs),
        helper.make_node(
            "MaxPool",
            ["a1"],
            ["p1"],
            name="pool1",
            **(pool or {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ),
        helper.make_node("Conv", ["p1", "W2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["a2"], name="act2"),
        helper.make_node("GlobalAveragePool", ["a2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "D"], ["logit"], name="dense"),
    ]
    head_input = "logit"
    if skip:  # the rest of the network also reads the image: the rest model must too
        nodes += [
            helper.make_node(
                "ReduceMean", ["x"], ["xm"], name="image_mean", axes=[1, 2, 3], keepdims=0
            ),
            helper.make_node("Unsqueeze", ["xm", "axis1"], ["xm1"], name="unsq"),
            helper.make_node("Add", ["logit", "xm1"], ["logit2"], name="skip"),
        ]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
        head_input = "logit2"
    nodes.append(helper.make_node("Sigmoid", [head_input], ["prob"], name="head"))
    shape = ["N", size, size, 3] if nhwc else ["N", 3, size, size]
    graph = helper.make_graph(
        nodes,
        "pooled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def assert_equals_tunable(base, options, x, points, **fast_kw) -> FastGrid:
    fast = FastGrid(base, options, **fast_kw)
    probs = fast.predict(x, points, progress=False)
    sess = session(convert_model(base, options, tunable=True, k_max=8).anan)
    for c, point in enumerate(points):
        expected = run_tunable(sess, x, point)
        diff = np.abs(probs[c] - expected).max()
        assert diff <= TOLERANCE, f"{options.describe()} {point}: max abs diff {diff:.3g}"
    return fast


@pytest.mark.parametrize("rule, plan", [("multiplicative", "pooled"), ("additive", "maps")])
def test_paper_grid_equals_tunable_export(rule, plan):
    base = pooled_cnn(seed=1)
    x = np.random.default_rng(2).normal(size=(10, 3, 12, 12)).astype(np.float32)
    fast = assert_equals_tunable(base, AnanParams(rule=rule), x, PAPER_POINTS)
    assert fast.plan == plan
    # Deduplication: never more rest runs than (image, configuration) pairs, and here fewer,
    # since under the absorbing counter only k - μ + 1, a and b matter (7 × 4 × 4 vectors).
    assert fast.stats["rest_rows"] <= 7 * 4 * 4 * len(x) < len(PAPER_POINTS) * len(x)


@pytest.mark.parametrize(
    "counter, signal, reduce",
    list(itertools.product(("absorbing", "clamp"), ("pre", "post"), ("mean", "max", "majority"))),
)
@pytest.mark.parametrize("rule", ["multiplicative", "additive"])
def test_option_matrix_equals_tunable_export(rule, counter, signal, reduce):
    options = AnanParams(rule=rule, counter=counter, signal=signal, reduce=reduce)
    x = random_batch(VARIANTS["plain"], 6, seed=4)
    assert_equals_tunable(build_cnn(VARIANTS["plain"], seed=2), options, x, SMALL_POINTS)


@pytest.mark.parametrize(
    "kw",
    [
        {
            "activation": "Sigmoid",
            "pool": {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
        },
        {
            "activation": "LeakyRelu",
            "pool": {"kernel_shape": [2, 2], "ceil_mode": 1},
            "bias": False,
        },
        {"nhwc": True, "skip": True},
    ],
    ids=["sigmoid-padded-pool", "leaky-ceil-nobias", "nhwc-skip"],
)
@pytest.mark.parametrize("signal", ["pre", "post"])
def test_pooled_plan_variants_equal_tunable_export(kw, signal):
    base = pooled_cnn(seed=3, **kw)
    shape = (7, 12, 12, 3) if kw.get("nhwc") else (7, 3, 12, 12)
    x = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    options = AnanParams(signal=signal, reduce="max" if signal == "post" else "mean")
    fast = assert_equals_tunable(base, options, x, SMALL_POINTS)
    assert fast.plan == "pooled"
    assert fast._rest_reads_image == bool(kw.get("skip"))


def test_pooled_and_maps_plans_agree():
    base = pooled_cnn(seed=6)
    x = np.random.default_rng(7).normal(size=(9, 3, 12, 12)).astype(np.float32)
    pooled = FastGrid(base).predict(x, SMALL_POINTS, progress=False)
    maps = FastGrid(base, pooled=False)
    assert maps.plan == "maps"
    np.testing.assert_allclose(maps.predict(x, SMALL_POINTS, progress=False), pooled, atol=1e-6)


@pytest.mark.filterwarnings("ignore:mu=.*> k=")
def test_small_batches_and_fixed_export_agree():
    base = build_cnn(VARIANTS["stride2"], seed=3, head="softmax")
    x = random_batch(VARIANTS["stride2"], 11, seed=8)
    points = SMALL_POINTS[::7]
    fast = FastGrid(base, AnanParams(rule="additive"), batch_size=3)
    probs = fast.predict(x, points, progress=False)
    assert probs.shape == (len(points), 11, 2)
    for c, point in enumerate(points):
        fixed = convert_model(base, point.params(AnanParams(rule="additive"))).anan
        expected = session(fixed).run(None, {"x": x})[0]
        np.testing.assert_allclose(probs[c], expected, atol=TOLERANCE, err_msg=str(point))


@pytest.mark.filterwarnings("ignore:mu=.*> k=")
@pytest.mark.parametrize("rule", ["multiplicative", "additive"])
@pytest.mark.parametrize("counter", ["absorbing", "clamp"])
def test_recurrence_matches_literal_reference_weights(rule, counter):
    """The numpy gains, applied to W⁺ and W⁻, give the literal loop's final weights."""
    base = build_cnn(VARIANTS["plain"], seed=5)
    x = random_batch(VARIANTS["plain"], 5, seed=9)
    points = [GridPoint(4, 2, 1.5, 0.5), GridPoint(5, 1, 1.2, 0.3, 1.0), GridPoint(3, 3, 2.0, 0.9)]
    options = AnanParams(rule=rule, counter=counter)
    fast = FastGrid(base, options)
    gp, gn = fast.gains(x, points)
    conversion = convert_model(base, options)
    w0 = next(numpy_helper.to_array(i) for i in conversion.base.graph.initializer if i.name == "W")
    pos, neg = np.maximum(w0, 0), np.minimum(w0, 0)
    for c, point in enumerate(points):
        ref = LiteralReference(conversion.base, conversion.target_layer, point.params(options))
        result = ref.run(x)
        assert not result.near_tie.any()
        ours = gp[c][:, :, None, None, None] * pos + gn[c][:, :, None, None, None] * neg
        np.testing.assert_allclose(ours, result.weights, rtol=1e-5, atol=1e-6, err_msg=str(point))
        assert np.abs(result.weights - w0).max() > 0, "the astrocytes should have acted"


def test_simulate_gains_by_hand():
    # Kernel 0 always fires, kernel 1 never: with μ = 2 the counters reach ±2 at step 2 and
    # hold, so kernel 0 is excited at steps 2..k and kernel 1 inhibited at steps 2..k.
    means = np.array([[0.5, -0.5]], np.float32)
    points = [GridPoint(4, 2, 2.0, 0.5), GridPoint(1, 2, 2.0, 0.5), GridPoint(3, 3, 1.5, 0.25)]
    gp, gn = simulate_gains(lambda g, _n, _need: g * means, points, (1, 2))
    np.testing.assert_allclose(gp[:, 0], [[8.0, 0.125], [1.0, 1.0], [1.5, 0.75]])
    assert gn is gp  # multiplicative: one gain
    # Additive, idle 0: g⁺ ← g⁺(1 + z), g⁻ ← g⁻ − |g⁻|·z; z = a then a (k = 3, μ = 2).
    gp, gn = simulate_gains(
        lambda g, _n, _need: g * means, [GridPoint(3, 2, 0.5, 0.5)], (1, 2), rule="additive"
    )
    np.testing.assert_allclose(gp[0, 0], [2.25, 0.25])
    np.testing.assert_allclose(gn[0, 0], [0.25, 2.25])


def test_configurations_that_never_trigger_equal_the_base():
    base = pooled_cnn(seed=2)
    x = np.random.default_rng(1).normal(size=(6, 3, 12, 12)).astype(np.float32)
    points = [GridPoint(2, 3, 1.5, 0.5), GridPoint(1, 4, 1.2, 0.2), GridPoint(4, 2, 1.5, 0.5)]
    fast = FastGrid(base)
    probs = fast.predict(x, points, progress=False)
    expected = session(base).run(None, {"x": x})[0]
    np.testing.assert_allclose(probs[0], expected, atol=1e-6)
    np.testing.assert_array_equal(probs[0], probs[1])  # one rest run serves both
    assert fast.stats["rest_rows"] == 2 * len(x)


def test_refusals():
    base = pooled_cnn()
    anan = convert_model(base, AnanParams()).anan
    with pytest.raises(AnanError, match="already an ANAN model"):
        FastGrid(anan)
    with pytest.raises(AnanError, match="batch_size must be a positive integer"):
        FastGrid(base, batch_size=0)
    with pytest.raises(AnanError, match="the grid is empty"):
        simulate_gains(lambda g, n, need: g, [], (1, 1))
    fast = FastGrid(base)
    with pytest.raises(AnanError, match="images"):
        fast.predict(np.zeros((2, 3, 5, 5), np.float32), SMALL_POINTS[:1])
