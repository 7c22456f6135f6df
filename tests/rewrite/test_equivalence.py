"""ONNX ANAN output = the spec's literal loop, over the option matrix and Conv variants."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from anan_onnx import AnanParams
from anan_onnx.testing import VARIANTS, ConvVariant, build_cnn, random_batch

from equivalence import assert_matches_reference, run_onnx, triggered

MATRIX = list(
    itertools.product(
        ("multiplicative", "additive"),
        ("absorbing", "clamp"),
        (0.0, 1.0),
        ("pre", "post"),
        ("mean", "max", "majority"),
    )
)
VARIANT_NAMES = list(VARIANTS)


def _w0(base):
    return next(numpy_helper.to_array(i) for i in base.graph.initializer if i.name == "W")


@pytest.mark.parametrize("fixed_batch", [False, True], ids=["dynamic", "fixed"])
@pytest.mark.parametrize(("rule", "counter", "idle", "signal", "reduce"), MATRIX)
def test_option_matrix(rule, counter, idle, signal, reduce, fixed_batch):
    i = MATRIX.index((rule, counter, idle, signal, reduce))
    variant = VARIANTS[VARIANT_NAMES[i % len(VARIANT_NAMES)]]
    k, mu = 1 + i % 8, 1 + (i // 8) % 4
    params = AnanParams(
        k=max(k, mu),
        mu=mu,
        a=1.35,
        b=0.35,
        idle=idle,
        counter=counter,
        rule=rule,
        signal=signal,
        reduce=reduce,
    )
    base = build_cnn(variant, activation="Relu", seed=i)
    x = random_batch(variant, 6, seed=i)
    _, ref = assert_matches_reference(base, params, x, batch=6 if fixed_batch else None)
    if variant.weights_as == "initializer":
        assert triggered(ref, _w0(base)), "no astrocyte fired: the case checks nothing"


@pytest.mark.parametrize("fixed_batch", [None, 8], ids=["dynamic", "fixed"])
@pytest.mark.parametrize("name", VARIANT_NAMES)
@pytest.mark.parametrize("rule", ["multiplicative", "additive"])
def test_conv_variants(name, rule, fixed_batch):
    variant = VARIANTS[name]
    params = AnanParams(k=4, mu=2, a=1.5, b=0.5, rule=rule)
    assert_matches_reference(
        build_cnn(variant, seed=3), params, random_batch(variant, 8), batch=fixed_batch
    )


@pytest.mark.parametrize("k", range(1, 9))
@pytest.mark.parametrize("mu", range(1, 5))
def test_k_and_mu(k, mu, recwarn):
    variant = VARIANTS["plain"]
    params = AnanParams(k=k, mu=mu, a=1.2, b=0.2, rule="additive", idle=0.0)
    assert_matches_reference(
        build_cnn(variant, seed=k * 10 + mu), params, random_batch(variant, 4, seed=k)
    )


POOL_CASES = [  # signal=post needs an activation: "max_no_act" only with "pre"
    (pool, signal)
    for pool in ("max", "max_padded", "max_no_act")
    for signal in ("pre", "post")
    if not (pool == "max_no_act" and signal == "post")
]


@pytest.mark.parametrize(("pool", "signal"), POOL_CASES)
@pytest.mark.parametrize("fixed_batch", [None, 6], ids=["dynamic", "fixed"])
@pytest.mark.parametrize("reduce", ["mean", "max"])
@pytest.mark.parametrize("b", [0.3, 1.0, 1.5])
def test_maxpool_after_the_layer(pool, signal, fixed_batch, reduce, b):
    """The scaling moved past the MaxPool (exact for gains >= 0) and the fallback (b > 1)."""
    variant = VARIANTS["plain"]
    params = AnanParams(k=4, mu=2, a=1.5, b=b, signal=signal, reduce=reduce)
    base = build_cnn(variant, pool=pool, seed=5)
    assert_matches_reference(base, params, random_batch(variant, 6), batch=fixed_batch)


@pytest.mark.parametrize("activation", ["Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "Clip"])
@pytest.mark.parametrize("reduce", ["mean", "max", "majority"])
def test_post_signal_activations(activation, reduce):
    variant = VARIANTS["plain"]
    params = AnanParams(k=5, mu=2, a=1.2, b=0.3, signal="post", reduce=reduce, rule="additive")
    base = build_cnn(variant, activation=activation, head="sigmoid", seed=7)
    assert_matches_reference(base, params, random_batch(variant, 6))


@pytest.mark.parametrize("counter", ["absorbing", "clamp"])
@pytest.mark.parametrize(("signal", "reduce"), [("post", "mean"), ("post", "max"), ("pre", "max")])
@pytest.mark.parametrize("pool", [None, "max"])
def test_dead_kernel_has_activity_exactly_zero(counter, signal, reduce, pool):
    """A kernel whose responses are all negative: its post-ReLU activity is exactly 0 (u = -1)."""
    variant = VARIANTS["plain"]
    base = build_cnn(variant, pool=pool, seed=8)
    bias = next(i for i in base.graph.initializer if i.name == "B")
    values = numpy_helper.to_array(bias).copy()
    values[0] = -3.3 * np.abs(_w0(base)[0]).sum() - 3.3  # no input in [-3, 3] can wake it
    bias.CopyFrom(numpy_helper.from_array(values, "B"))
    params = AnanParams(k=5, mu=2, a=1.5, b=0.5, counter=counter, signal=signal, reduce=reduce)
    x = np.clip(random_batch(variant, 6), -3, 3)
    _, ref = assert_matches_reference(base, params, x)
    assert np.all(ref.weights[:, 0] == _w0(base)[0] * np.float32(0.5) ** 4), "kernel 0 not dead"


def test_mu_above_k_equals_base():
    variant = VARIANTS["plain"]
    base = build_cnn(variant)
    x = random_batch(variant, 4)
    with pytest.warns(UserWarning, match="never trigger"):
        params = AnanParams(k=2, mu=3)
    ours, _ = assert_matches_reference(base, params, x)
    np.testing.assert_allclose(ours, run_onnx(base, x), atol=1e-6)


def test_a_wrong_graph_is_caught():
    """The comparison can fail: a model converted with other parameters disagrees."""
    variant = VARIANTS["plain"]
    base = build_cnn(variant, seed=11)
    x = random_batch(variant, 8)
    from anan_onnx import LiteralReference, convert_model

    conversion = convert_model(base, AnanParams(k=4, mu=1, a=1.5, b=0.5, rule="additive"))
    ref = LiteralReference(
        conversion.base,
        conversion.target_layer,
        AnanParams(k=4, mu=1, a=1.05, b=0.05, rule="additive"),
    ).run(x)
    assert np.abs(run_onnx(conversion.anan, x) - ref.outputs[0]).max() > 1e-3


# --- property-based: random Conv configurations and parameters --------------------------------

EXAMPLES = int(os.environ.get("ANAN_HYPOTHESIS_EXAMPLES", "200"))


@st.composite
def conv_configs(draw):
    group = draw(st.sampled_from([1, 1, 2, 3]))
    in_channels = group * draw(st.integers(1, 2))
    out_channels = group * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    dilations = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["explicit", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if padding.startswith("SAME"):  # onnxruntime runs no dilated SAME conv, base included
        dilations = (1, 1)
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4)) if padding == "explicit" else None
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    size = tuple(r + draw(st.integers(0, 6)) for r in reach)
    return ConvVariant(
        in_channels=in_channels,
        out_channels=out_channels,
        kernel=kernel,
        strides=strides,
        dilations=dilations,
        group=group,
        pads=pads,
        auto_pad=None if padding == "explicit" else padding,
        bias=draw(st.booleans()),
        weights_as=draw(st.sampled_from(["initializer", "constant"])),
        size=size,
    )


@st.composite
def anan_params(draw):
    mu = draw(st.integers(1, 4))
    return AnanParams(
        k=draw(st.integers(mu, 8)),
        mu=mu,
        a=draw(st.sampled_from([1.05, 1.2, 1.35, 1.5, 0.0, 2.5])),
        b=draw(st.sampled_from([0.05, 0.2, 0.35, 0.5, 0.0, 1.0])),
        idle=draw(st.sampled_from([0.0, 1.0, 0.25])),
        counter=draw(st.sampled_from(["absorbing", "clamp"])),
        rule=draw(st.sampled_from(["multiplicative", "additive"])),
        signal=draw(st.sampled_from(["pre", "post"])),
        reduce=draw(st.sampled_from(["mean", "max", "majority"])),
    )


_CASES = dict(
    variant=conv_configs(),
    params=anan_params(),
    activation=st.sampled_from(["Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "Clip"]),
    batch=st.integers(1, 5),
    fixed_batch=st.booleans(),
    pool=st.sampled_from([None, "max", "max_padded", "max_no_act"]),
    seed=st.integers(0, 2**16),
)
_SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _random_conv_matches_reference(variant, params, activation, batch, fixed_batch, pool, seed):
    if pool == "max_no_act" and params.signal == "post":
        pool = "max"
    if min(_out_size(variant)) < 3:  # too small to pool
        pool = None
    base = build_cnn(variant, activation=activation, pool=pool, seed=seed)
    x = random_batch(variant, batch, seed=seed + 1)
    assert_matches_reference(base, params, x, min_compared=1, batch=batch if fixed_batch else None)


def _out_size(v: ConvVariant) -> list[int]:
    if v.auto_pad and v.auto_pad.startswith("SAME"):
        return [-(-n // s) for n, s in zip(v.size, v.strides, strict=True)]
    pads = v.pads or (0, 0, 0, 0)
    return [
        (n + pads[i] + pads[i + 2] - ((k - 1) * d + 1)) // s + 1
        for i, (n, k, s, d) in enumerate(zip(v.size, v.kernel, v.strides, v.dilations, strict=True))
    ]


test_property_random_convs = settings(max_examples=EXAMPLES, **_SETTINGS)(
    given(**_CASES)(_random_conv_matches_reference)
)
#: the long run: pytest -m slow tests/test_equivalence.py (1000 examples, about a minute)
test_property_random_convs_slow = pytest.mark.slow(
    settings(
        max_examples=1000,
        derandomize=False,
        **{k: v for k, v in _SETTINGS.items() if k != "derandomize"},
    )(given(**_CASES)(_random_conv_matches_reference))
)
