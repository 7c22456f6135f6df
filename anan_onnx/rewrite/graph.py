"""Graph rewrite: the target Conv becomes an unrolled k-step astrocyte subgraph.

Pattern rewritten::

    x ──Conv(W0, β)──▶ act ──▶ ...          becomes
    x ──Conv(W⁺), Conv(W⁻) ──▶ P, N ── k × (activity, counter, gain) ──▶ g⁺·P + g⁻·N + β ──▶ act

It uses the spec's identity ``W(t) = g⁺(t)·W⁺ + g⁻(t)·W⁻`` with per-image, per-kernel gains
of shape (N, O, 1, 1) (or (N, 1, O, 1) columns where every step reads the step-1 activity,
see ``routes.window_means``): the monitoring steps are per-kernel arithmetic and never re-run a
convolution. Under ``rule='multiplicative'`` both gains always receive the same multiplier,
so a single gain on the unsplit ``C = conv(x, W0)`` is exact and one convolution suffices.

The activities take the cheapest exact route (:func:`activity_strategy`): window sums of
the input for pre-activation means (``routes.window_means``), once-reduced maxima when the gains
are non-negative, two passes per step for post-ReLU means. Each step's sign test, counter
and trigger are float arithmetic that every backend runs alike (``portable_steps``: no
``Greater``/``Where``/``Gather``; parameters as graph inputs in a tunable export). The
modulated layer is moved past a following MaxPool when exact (``routes.pool_commute``) and its
gains applied in onnxruntime's blocked layout (``routes.blocked_scaling``); elsewhere the gains
scale the maps of the Conv with its own constant weights, at any batch (a Conv whose weights
are computed per image is lowered by fewer engines: onnx2tf/LiteRT cannot).

Only standard ONNX ops are used (opset 13–18); every node is named ``anan/...``.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from anan_onnx.choices import Counter, Reduce, Rule, Scaling, Signal
from anan_onnx.params import PARAMS, AnanParams
from anan_onnx.rewrite.activities import activity_strategy, clone_activation, combine
from anan_onnx.rewrite.builder import NAME_PREFIX, GraphBuilder
from anan_onnx.rewrite.geometry import conv_geometry
from anan_onnx.rewrite.portable_steps import (
    Knobs,
    fixed_knobs,
    folded_steps,
    general_steps,
    shared_steps,
)
from anan_onnx.rewrite.routes.batch_scan import scan_stage
from anan_onnx.rewrite.routes.blocked_scaling import SCALINGS, blocked_scaling, can_block
from anan_onnx.rewrite.routes.pool_commute import gains_non_negative, is_monotone, pool_after
from anan_onnx.rewrite.target import ConvTarget

__all__ = ["PARAM_INPUTS", "SCALINGS", "build_anan_graph", "steps_foldable"]

#: Graph inputs of a tunable export, each a float32 scalar defaulting to the converted value.
PARAM_INPUTS = tuple(p.graph_input for p in PARAMS if p.graph_input)


def build_anan_graph(
    model: ir.Model,
    target: ConvTarget,
    params: AnanParams,
    *,
    tunable: bool = False,
    k_max: int | None = None,
    scaling: str = Scaling.BLOCKED,
    fold_steps: bool = False,
    prefix: str = NAME_PREFIX,
) -> None:
    """Rewrites ``model`` in place: ``target`` becomes the ANAN subgraph.

    Args:
        model: the base model (its graph holds ``target.node``).
        target: the convolution to modulate, from :func:`find_target`.
        params: ANAN parameters; with ``tunable`` they become input defaults.
        tunable: expose k, μ, a, b, idle as graph inputs (``anan_k`` ...) with defaults.
        k_max: number of unrolled steps of a tunable export (steps beyond ``anan_k``
            leave the state unchanged); defaults to ``params.k``.
        scaling: how the final gains are applied after a MaxPool: ``'blocked'`` (in
            onnxruntime's NCHWc layout, ``routes.blocked_scaling``) or ``'broadcast'``;
            ``'scan'``: blocked, and the layer's stage image by image (``routes.batch_scan``).
        fold_steps: where every step reads the step-1 activity (:func:`steps_foldable`),
            pick the final gains by the step-1 sign test instead of unrolling the k steps
            (same outputs). ``ConvertOptions`` decides it (folded wherever exact by default);
            this low-level default keeps the literal unrolled steps.
        prefix: the names' prefix (``anan/``; another per added layer, see ``rewrite.layers``).
    """
    graph = model.graph
    conv = target.node
    b = GraphBuilder(target.weight.dtype, prefix)
    knobs = _knobs(b, graph, params) if tunable else None  # fixed parameters: constants
    steps = max(k_max or params.k, params.k) if tunable else params.k

    bias = None if target.bias is None else b.const("anan/bias", target.bias.reshape(1, -1, 1, 1))
    weights = _split_weights(target.weight, params.rule)
    geom = conv_geometry(conv, target.weight)
    act = target.activation
    monotone = gains_non_negative(params, tunable)  # then v ↦ act(g·v + β) is monotone
    pool = pool_after(conv, act) if monotone and is_monotone(act) else None
    mean_only = params.signal == Signal.PRE and params.reduce == Reduce.MEAN
    maps = _first_layer_maps(b, conv, weights, params.rule)
    shared = step1_activity_shared(params, tunable)
    # The one activity read by every step, as an (N, 1, O, 1) column (see routes.window_means)
    # where the blocked scaling reads it so; elsewhere the (N, O, 1, 1) means of one Conv are
    # 3 nodes fewer (no Reshape, MatMul + Add and Reshape back), which small models feel
    blocked = (
        pool is not None
        and scaling in (Scaling.BLOCKED, Scaling.SCAN)
        and can_block(pool.outputs[0])
    )
    column = mean_only and geom is not None and gains_are_columns(params, tunable) and blocked
    activity_of = activity_strategy(
        b, target, params, weights, geom, maps, bias, monotone, column=column
    )
    channels = target.out_channels
    b.unit = b.const("anan/gain_init", np.ones((1, channels, 1, 1)))
    gains = [b.unit] * len(weights)

    if fold_steps and steps_foldable(params, tunable):
        via_flat = blocked and not column  # docs/engines.md: LiteRT
        gains = folded_steps(b, params, activity_of, gains, steps, column=column, via_flat=via_flat)
    elif steps_foldable(params, tunable):  # shared activity, fixed parameters
        gains = shared_steps(b, params, activity_of, gains, steps, column=column)
    else:
        knobs = knobs or fixed_knobs(b, params)
        gains = general_steps(b, knobs, params, activity_of, gains, steps, shared)

    if pool is not None:
        _splice_pool_commuted(
            graph, b, conv, act, pool, gains, maps, bias, target.bias, scaling, blocked, column
        )
        return
    if column:
        gains = [_column_to_channels(b, g) for g in gains]
    output = combine(b, gains, maps, bias, "anan/output")
    if scaling != Scaling.SCAN:
        _splice(graph, [conv], conv.outputs[0], b, output)
        return
    # the activation joins the stage, so that its pass too runs on maps still in the cache
    removed, old = [conv], conv.outputs[0]
    if act is not None:
        output = clone_activation(b, act, output, "anan/output_act")
        removed, old = [act, conv], act.outputs[0]
    _splice_scanned(graph, b, conv, gains, output, removed, old)


def step1_activity_shared(params: AnanParams, tunable: bool = False) -> bool:
    """Whether every step may use the step-1 activity: under the absorbing counter the
    weights stay W0 until a counter reaches ±μ, and a counter at ±μ is held whatever u says.
    With the additive rule only if an untriggered step changes nothing (idle = 0, fixed)."""
    return params.counter == Counter.ABSORBING and (
        params.rule == Rule.MULTIPLICATIVE or (params.idle == 0 and not tunable)
    )


def gains_are_columns(params: AnanParams, tunable: bool = False) -> bool:
    """Whether the activity, and so the gains, may be (N, 1, O, 1) columns: the activity is
    read once (the shared or folded steps of :func:`steps_foldable`) and the one gain of the
    multiplicative rule is computed from it alone (no (1, O, 1, 1) unit gain enters)."""
    return steps_foldable(params, tunable) and params.rule == Rule.MULTIPLICATIVE


def steps_foldable(params: AnanParams, tunable: bool = False) -> bool:
    """Whether ``fold_steps`` applies: a shared step-1 activity, and parameters known at
    conversion time (not a tunable model) to take the walks with."""
    return step1_activity_shared(params, tunable) and not tunable


def _column_to_channels(b: GraphBuilder, gain: ir.Value) -> ir.Value:
    """(N, 1, O, 1) → (N, O, 1, 1), for the consumers that broadcast the gains over maps."""
    shape = b.const_int(f"{gain.name}_shape", [0, -1, 1, 1])
    return b.named("Reshape", [gain, shape], f"{gain.name}_channels")


def _splice_pool_commuted(
    graph: ir.Graph,
    b: GraphBuilder,
    conv: ir.Node,
    act: ir.Node | None,
    pool: ir.Node,
    gains: list[ir.Value],
    maps: list[ir.Value],
    bias: ir.Value | None,
    beta: np.ndarray | None,
    scaling: str,
    blocked: bool,
    column: bool,
) -> None:
    """act(g·MaxPool(C) + β) replaces MaxPool(act(conv(x, W) + β)) (see routes.pool_commute).

    ``bias`` is β as a (1, O, 1, 1) graph constant, ``beta`` the (O,) array (or None);
    ``blocked``: the gains are applied in the blocked layout (``routes.blocked_scaling``);
    ``column``: the gain is an (N, 1, O, 1) column."""
    pooled = b.like(pool, [maps[0]], "anan/output_pool")
    known = pool.outputs[0]
    if known.shape is not None:
        pooled.type, pooled.shape = known.type, ir.Shape(list(known.shape))
    (gain,) = gains  # the pool route is multiplicative: one gain
    if blocked:
        output = blocked_scaling(b, gain, pooled, beta, "anan/output_scaled", column=column)
    else:
        if column:
            gain = _column_to_channels(b, gain)
        output = combine(b, [gain], [pooled], bias, "anan/output_scaled")
    if act is not None:
        output = clone_activation(b, act, output, "anan/output")
    removed = [pool, *([act] if act else []), conv]
    if scaling == Scaling.SCAN:
        _splice_scanned(graph, b, conv, [gain], output, removed, pool.outputs[0])
        return
    _splice(graph, removed, pool.outputs[0], b, output)


def _splice_scanned(
    graph: ir.Graph,
    b: GraphBuilder,
    conv: ir.Node,
    gains: list[ir.Value],
    output: ir.Value,
    removed: list[ir.Node],
    old: ir.Value,
) -> None:
    """The stage that computes ``output`` run image by image (``routes.batch_scan``), then
    spliced in for ``old``; outer constants only the stage read are dropped."""
    x = conv.inputs[0]
    assert x is not None
    scanned, moved = scan_stage(b, x, gains, output, "anan/stage")
    _splice(graph, removed, old, b, scanned)
    for value in moved:
        if not value.uses() and value.is_initializer() and not value.is_graph_output():
            graph.initializers.pop(value.name)  # type: ignore[arg-type]


def _split_weights(weight: np.ndarray, rule: str) -> list[np.ndarray]:
    """[W0] for the multiplicative rule (one gain), [W⁺, W⁻] for the additive rule."""
    if rule == Rule.MULTIPLICATIVE:
        return [weight]
    return [np.maximum(weight, 0), np.minimum(weight, 0)]


def _knobs(b: GraphBuilder, graph: ir.Graph, params: AnanParams) -> Knobs:
    """k, μ, a, b, idle as graph inputs of a tunable export, defaulting to ``params``."""
    values = tuple(getattr(params, p.name) for p in PARAMS if p.graph_input)
    defaults = dict(zip(PARAM_INPUTS, values, strict=True))
    inputs = {}
    for name, default in defaults.items():
        value = ir.Value(
            name=name,
            type=ir.TensorType(ir.DataType.from_numpy(b.dtype)),
            shape=ir.Shape([]),
            const_value=ir.tensor(np.asarray(default, b.dtype), name=name),
        )
        graph.inputs.append(value)
        graph.register_initializer(value)
        inputs[name] = value
    mu, beta = inputs["anan_mu"], inputs["anan_b"]
    multiplicative = params.rule == Rule.MULTIPLICATIVE
    # 1 - b (multiplicative) or 0 - b (additive): Sub, as Neg is missing from CoreML's lists
    inhibit = b.named("Sub", [b.scalar(1.0 if multiplicative else 0.0), beta], "anan/b_factor")
    return Knobs(
        mu_less_one=b.named("Sub", [mu, b.scalar(1.0)], "anan/mu_less_one"),
        one_less_mu=b.named("Sub", [b.scalar(1.0), mu], "anan/one_less_mu"),
        excite=inputs["anan_a"],
        inhibit=inhibit,
        idle=None if multiplicative else inputs["anan_idle"],
        k=inputs["anan_k"],
    )


def _first_layer_maps(
    b: GraphBuilder, conv: ir.Node, weights: list[np.ndarray], rule: str
) -> list[ir.Value]:
    """conv(x, W0) for the multiplicative rule; conv(x, W⁺) and conv(x, W⁻) for additive."""
    if rule == Rule.MULTIPLICATIVE:  # reuse the model's own weights: no second copy
        parts = {"anan/conv": conv.inputs[1]}
    else:
        parts = {
            "anan/conv_pos": b.const("anan/conv_pos_weight", weights[0]),
            "anan/conv_neg": b.const("anan/conv_neg_weight", weights[1]),
        }
    return [b.like(conv, [conv.inputs[0], w], name) for name, w in parts.items()]


def _splice(
    graph: ir.Graph, removed: list[ir.Node], old: ir.Value, b: GraphBuilder, output: ir.Value
) -> None:
    """Inserts the new nodes, reroutes ``old``'s users to ``output`` (keeping ``old``'s name,
    type and shape: it may be a graph output) and removes the replaced nodes (conv, and
    activation if folded in)."""
    output.type = old.type or output.type
    output.shape = old.shape or output.shape
    for init in b.initializers:
        if init.uses():  # the batch_scan route leaves some to its body's copies
            graph.register_initializer(init)
    graph.insert_before(removed[-1], b.nodes)
    name = old.name
    ir.convenience.replace_all_uses_with(old, output, replace_graph_outputs=True)
    graph.remove(removed, safe=True)
    old.name = None
    output.name = name
