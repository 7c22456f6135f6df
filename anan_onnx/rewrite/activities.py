"""Kernel activities s_j(t) of the modulated layer, by the cheapest exact route.

Pattern rewritten (per step, the spec's response and reduction)::

    reduce(act(conv(x, W(t)) + β))          becomes, where exact,
    g·mean(C) + β   from window sums of the input   (signal=pre, reduce=mean)
    act(g·max(C) + β)   with max(C) taken once       (reduce=max, g >= 0, act monotone)
    g·mean(relu(C + β/g))                            (signal=post, mean, ReLU, g >= 0)
    reduce(act(g⁺·P + g⁻·N + β))                     (anything else)

:func:`activity_strategy` picks the route once per conversion and returns the function the
steps call with their gains. ``combine`` (Σ gᵢ·mapᵢ + β) and ``clone_activation`` are
shared with the splice in ``graph``.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from anan_onnx.choices import Reduce, Signal
from anan_onnx.params import AnanParams
from anan_onnx.rewrite.builder import GraphBuilder
from anan_onnx.rewrite.geometry import ConvGeometry
from anan_onnx.rewrite.portable_steps import ActivityOf, fires
from anan_onnx.rewrite.routes.pool_commute import is_monotone
from anan_onnx.rewrite.routes.window_means import window_means, window_sums
from anan_onnx.rewrite.target import ConvTarget

__all__ = ["activity_strategy", "clone_activation", "combine", "conv_group"]


def activity_strategy(
    b: GraphBuilder,
    target: ConvTarget,
    params: AnanParams,
    weights: list[np.ndarray],
    geom: ConvGeometry | None,
    maps: list[ir.Value] | None,
    bias: ir.Value | None,
    monotone: bool,
    *,
    column: bool = False,
) -> ActivityOf:
    """The cheapest exact way to get the kernel activities s_j(t) from the gains.

    Returns ``activity(gains, tag) -> (N, O, 1, 1) value`` ((N, 1, O, 1) with ``column``,
    for window-sum means only). Where the gains can be taken out of the reduction, the
    maps are reduced once and every step is per-kernel arithmetic.
    """
    act = target.activation
    post = params.signal == Signal.POST
    # mean(g·C + β) = g·mean(C) + β
    if params.reduce == Reduce.MEAN and not post and geom is not None:
        return _mean_from_window_sums(b, target, weights, geom, bias, column)
    assert maps is not None, "only the window-sum means do without the maps"
    layer_maps = maps
    if params.reduce == Reduce.MEAN and not post:  # input size unknown: one read pass over the maps
        means = [b.named("GlobalAveragePool", [m], f"{m.name}_mean") for m in maps]
        return lambda gains, tag: combine(b, gains, means, bias, f"{tag}/activity")
    if params.reduce == Reduce.MAX and monotone and (not post or is_monotone(act)):
        # max(act(g·C + β)) = act(g·max(C) + β) for g >= 0 and a monotone act
        maxima = [b.named("GlobalMaxPool", [m], f"{m.name}_max") for m in maps]

        def kernel_max(gains: list[ir.Value], tag: str) -> ir.Value:
            value = combine(b, gains, maxima, bias, f"{tag}/activity_pre")
            if not post:
                return value
            assert act is not None, "signal=post: checked by convert_model"
            return clone_activation(b, act, value, f"{tag}/activity")

        return kernel_max
    relu = act is not None and act.op_type == "Relu"
    if params.reduce == Reduce.MEAN and post and monotone and relu:
        if bias is None:  # relu(g·C) = g·relu(C) for g >= 0: the mean is taken once
            relu_map = b.named("Relu", [maps[0]], "anan/conv_relu")
            once = b.named("GlobalAveragePool", [relu_map], "anan/conv_relu_mean")
            return lambda gains, tag: b.named("Mul", [gains[0], once], f"{tag}/activity")
        beta = bias
        return lambda gains, tag: _relu_mean(b, gains[0], layer_maps[0], beta, tag)

    def from_maps(gains: list[ir.Value], tag: str) -> ir.Value:
        response = combine(b, gains, layer_maps, bias, f"{tag}/response")
        return _reduce(b, _activate(b, response, target, params, tag), params, tag)

    return from_maps


def _mean_from_window_sums(
    b: GraphBuilder,
    target: ConvTarget,
    weights: list[np.ndarray],
    geom: ConvGeometry,
    bias: ir.Value | None,
    column: bool = False,
) -> ActivityOf:
    """Pre-activation kernel means from window sums of the (smaller) input (measured
    cheaper than a pass over the maps). Before step 1 (unit gains) the activity is one
    small convolution with the layer's own kernel and bias (a MatMul giving a column, with
    ``column``); later steps combine the means of the weight parts with their gains."""
    conv, group = target.node, conv_group(target.node)
    x = conv.inputs[0]
    assert x is not None, "a Conv has an input"
    sums = window_sums(b, x, geom, "anan/means")
    parts: list[ir.Value] = []

    def activity(gains: list[ir.Value], tag: str) -> ir.Value:
        if all(g is b.unit for g in gains):
            name, bias_ = f"{tag}/activity", target.bias
            return window_means(b, sums, geom, target.weight, group, name, bias_, column=column)
        if not parts:
            parts.extend(
                window_means(b, sums, geom, w, group, f"anan/means/mean{i}")
                for i, w in enumerate(weights)
            )
        return combine(b, gains, parts, bias, f"{tag}/activity")

    return activity


def _relu_mean(
    b: GraphBuilder, gain: ir.Value, conv_map: ir.Value, bias: ir.Value, tag: str
) -> ir.Value:
    """mean(relu(g·C + β)) = g·mean(relu(C + β/g)) for g > 0, relu(β) for g = 0 (g >= 0).

    Three passes over the map per step (Add, Relu, mean) instead of four, and a kernel whose
    responses are all negative still gets an activity of exactly 0, as in the literal loop.
    The g = 0 case is selected arithmetically (p·value + (1 − p)·relu(β) with p = [g > 0]
    from the exact sign test of ``portable_steps``), and the divisor is then 1, not 0, so
    nothing is inf or NaN; a positive g below 1e-30 divides by ~1e-30, as before.

    From the unit gain (step 1) this is mean(relu(C + β)), bit for bit (β/1, 1·m, m + 0),
    written so: the general form would compute on constants only, which onnx2tf leaves in
    NCHW beside the NHWC map, and LiteRT then fails to prepare the model.
    """
    if gain is b.unit:
        shifted = b.named("Add", [conv_map, bias], f"{tag}/shifted")
        relu = b.named("Relu", [shifted], f"{tag}/relu")
        return b.named("GlobalAveragePool", [relu], f"{tag}/activity")
    positive = fires(b, gain, f"{tag}/gain_positive")
    zero = b.named("Sub", [b.scalar(1.0), positive], f"{tag}/gain_zero")
    short = b.named("Sub", [b.scalar(1e-30), gain], f"{tag}/gain_short")
    floor = b.named(
        "Add", [gain, b.named("Relu", [short], f"{tag}/gain_lift")], f"{tag}/gain_floor"
    )
    safe = b.named("Add", [floor, zero], f"{tag}/gain_safe")
    shift = b.named("Div", [bias, safe], f"{tag}/bias_over_gain")
    shifted = b.named("Add", [conv_map, shift], f"{tag}/shifted")
    mean = b.named(
        "GlobalAveragePool", [b.named("Relu", [shifted], f"{tag}/relu")], f"{tag}/relu_mean"
    )
    value = b.named("Mul", [gain, mean], f"{tag}/activity_scaled")
    kept = b.named("Mul", [positive, value], f"{tag}/activity_positive")
    dead = b.named(
        "Mul", [zero, b.named("Relu", [bias], f"{tag}/bias_relu")], f"{tag}/activity_dead"
    )
    return b.named("Add", [kept, dead], f"{tag}/activity")


def conv_group(conv: ir.Node) -> int:
    group = conv.attributes.get("group")
    return group.as_int() if group is not None else 1


def combine(
    b: GraphBuilder, gains: list[ir.Value], maps: list[ir.Value], bias: ir.Value | None, name: str
) -> ir.Value:
    """Σ gᵢ·mapᵢ (+ β); a unit gain (the state before step 1) multiplies nothing."""
    pairs = enumerate(zip(gains, maps, strict=True))
    terms = [m if g is b.unit else b.named("Mul", [g, m], f"{name}_term{i}") for i, (g, m) in pairs]
    total = terms[0]
    for i, term in enumerate(terms[1:], 1):
        total = b.named("Add", [total, term], f"{name}_sum{i}")
    return total if bias is None else b.named("Add", [total, bias], name)


def _activate(
    b: GraphBuilder, response: ir.Value, target: ConvTarget, params: AnanParams, tag: str
) -> ir.Value:
    if params.signal == Signal.PRE:
        return response
    assert target.activation is not None, "checked by convert_model"
    return clone_activation(b, target.activation, response, f"{tag}/post")


def clone_activation(b: GraphBuilder, act: ir.Node, x: ir.Value, name: str) -> ir.Value:
    """The layer's activation node (same op, attributes and extra inputs) applied to ``x``."""
    return b.like(act, [x, *act.inputs[1:]], name)


def _reduce(b: GraphBuilder, y: ir.Value, params: AnanParams, tag: str) -> ir.Value:
    if params.reduce == Reduce.MEAN:
        return b.named("GlobalAveragePool", [y], f"{tag}/activity")
    if params.reduce == Reduce.MAX:
        return b.named("GlobalMaxPool", [y], f"{tag}/activity")
    positive = fires(b, y, f"{tag}/fires")  # exact 0/1 per position
    share = b.named("GlobalAveragePool", [positive], f"{tag}/share")
    return b.named("Sub", [share, b.const(f"{tag}/half", 0.5)], f"{tag}/activity")
