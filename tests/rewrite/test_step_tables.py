"""The tabulated steps (``_step_tables``) = eqs. 1–3 of the spec, step by step."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from anan_onnx import AnanParams, convert_model, read_metadata
from anan_onnx.rewrite.step_tables import final_gains, step_tables
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

from equivalence import assert_matches_reference

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


@pytest.mark.parametrize(("mu", "counter", "rule"), OPTIONS)
def test_every_transition_is_the_spec_step(mu, counter, rule):
    params = AnanParams(k=8, mu=mu, a=1.35, b=0.2, idle=0.5, counter=counter, rule=rule)
    tables = step_tables(params)
    n = tables.counter_values
    for r, f in itertools.product(range(-mu, mu + 1), (0, 1)):
        expected_r, expected_value = _spec_step(r, 1 if f else -1, params)
        index = int(tables.next_state[r + mu + n * f])
        assert index - mu == expected_r, (r, f)
        assert tables.trigger[index] == pytest.approx(expected_value)
        shared = int(tables.next_shared[r + mu + n * f])
        assert (shared - n * f, shared // n) == (index, f)  # the shared state keeps its u
        assert tables.trigger[shared] == tables.trigger[index]


@pytest.mark.parametrize(("mu", "counter", "rule"), OPTIONS)
def test_walks_follow_the_spec_for_random_signs(mu, counter, rule):
    params = AnanParams(k=8, mu=mu, a=1.5, b=0.35, idle=1.0, counter=counter, rule=rule)
    tables = step_tables(params)
    n = tables.counter_values
    rng = np.random.default_rng(mu)
    for signs in rng.integers(0, 2, size=(50, 8)):
        r, index = 0, mu
        for f in signs:
            r, value = _spec_step(r, 1 if f else -1, params)
            index = int(tables.next_state[index + n * f])
            assert (index - mu, tables.trigger[index]) == (r, pytest.approx(value))


def test_a_shared_walk_never_leaves_its_half():
    tables = step_tables(AnanParams(k=8, mu=3))
    n = tables.counter_values
    for f in (0, 1):
        state = tables.mu + n * f
        for _ in range(8):
            state = int(tables.next_shared[state])
            assert state // n == f


@pytest.mark.parametrize("k", [2, 4, 8])
def test_each_step_has_its_counter_node_and_few_nodes(k):
    """k counter lookups, and a node count that grows by three per step (default options:
    the counter, its multiplier and the gain update)."""
    anan = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=k, mu=1)).anan
    names = [n.name for n in anan.graph.node]
    assert all(f"anan/step{t}/counter" in names for t in range(1, k + 1))
    longer = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=k + 1, mu=1)).anan
    assert len(longer.graph.node) - len(anan.graph.node) == 3


def test_clamp_recomputes_the_activity_every_step():
    params = AnanParams(k=5, mu=2, counter="clamp")
    anan = convert_model(build_cnn(VARIANTS["plain"]), params).anan
    names = {n.name for n in anan.graph.node}
    assert {f"anan/step{t}/multiplier" for t in range(1, 6)} <= names
    assert {f"anan/step{t}/fired" for t in range(1, 6)} <= names


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
    unrolled = convert_model(base, params, batch=batch).anan
    assert not any("/counter" in n.name for n in folded.graph.node)
    # at k = 1 both are one lookup after the sign test (a Where, or a Cast and a Gather)
    fewer = len(unrolled.graph.node) - len(folded.graph.node)
    assert fewer > 0 if params.k > 1 else fewer == 0
    assert read_metadata(folded)["steps"] == "folded"
    assert read_metadata(unrolled)["steps"] == "unrolled"


@pytest.mark.filterwarnings("ignore:mu=4 > k=3")
@pytest.mark.parametrize("rule", ["multiplicative", "additive"])
@pytest.mark.parametrize(("k", "mu"), [(1, 1), (4, 2), (8, 3), (3, 4)])
def test_final_gains_are_the_spec_walk(rule, k, mu):
    """The folded gains = the spec's loop with a fixed sign, on one weight of each sign."""
    params = AnanParams(k=k, mu=mu, a=1.35, b=0.2, rule=rule, counter="absorbing")
    table = final_gains(step_tables(params), k, rule, np.dtype(np.float32))
    for f, u in ((0, -1), (1, 1)):
        r, weights = 0, np.array([1.0, -1.0], np.float32)
        for _ in range(k):
            r, value = _spec_step(r, u, params)
            value = np.float32(value)
            weights = (
                weights * value if rule == "multiplicative" else weights + np.abs(weights) * value
            )
        expected = weights[:1] if rule == "multiplicative" else np.array([weights[0], -weights[1]])
        np.testing.assert_allclose(table[f], expected, rtol=1e-6)


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
def test_every_opset_runs_the_table_steps(opset, fold):
    """The steps' lookups and the blocked scaling (Resize, Reshape) under every opset."""
    variant = dataclasses.replace(VARIANTS["plain"], out_channels=16)  # blocked scaling too
    base = build_cnn(variant, pool="max", seed=1, opset=opset)
    params = AnanParams(k=5, mu=2, a=1.35, b=0.2)
    assert_matches_reference(base, params, random_batch(variant, 6), fold_steps=fold)
    anan = convert_model(base, params, fold_steps=fold).anan
    assert {o.version for o in anan.opset_import if o.domain == ""} == {opset}


def test_a_tunable_model_keeps_its_arithmetic_steps():
    """Parameters as graph inputs: no tables can be filled, so no folding either."""
    with pytest.warns(UserWarning, match="fold_steps ignored"):
        anan = convert_model(
            build_cnn(VARIANTS["plain"]), AnanParams(), tunable=True, fold_steps=True
        ).anan
    names = {n.name for n in anan.graph.node}
    assert {"anan/step1/counter_kept", "anan/step4/multiplier"} <= names
    assert not any(n.op_type == "Gather" for n in anan.graph.node)
    assert read_metadata(anan)["steps"] == "unrolled"


def test_every_step_has_its_counter_multiplier_and_gain_update():
    """The default graph shows the k steps (the absorbing counter shares the step-1
    activity, so only step 1 has a sign test); no step is folded into another."""
    k = 4
    anan = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=k)).anan
    ops = {n.name: n.op_type for n in anan.graph.node}
    for t in range(1, k + 1):
        assert ops[f"anan/step{t}/counter"] == ("Where" if t == 1 else "Gather")
        assert ops[f"anan/step{t}/multiplier"] == "Gather"
    assert [ops.get(f"anan/step{t}/gain0") for t in range(1, k + 1)] == [None] + ["Mul"] * (k - 1)
    assert not {"Concat", "ReduceProd"} & set(ops.values())
