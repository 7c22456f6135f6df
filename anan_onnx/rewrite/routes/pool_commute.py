"""Move the per-image, per-kernel scaling past the MaxPool that follows the layer.

Pattern rewritten (multiplicative rule, all gains g >= 0)::

    C = Conv(x, W0);  MaxPool(act(g·C + β))   becomes   act(g·MaxPool(C) + β)

``v ↦ act(g·v + β)`` is monotone non-decreasing when g >= 0 and the activation is, so it
commutes with a max over any window; IEEE rounding is monotone too, so both sides are
bit-identical. The elementwise passes then run on the pooled tensor, a quarter of the
layer's output for a 2×2 pool: this is what keeps a dynamic-batch ANAN model near the cost
of the base CNN. The same argument gives the kernel maxima for ``reduce='max'``:
``max(act(g·C + β)) = act(g·max(C) + β)``.
"""

from __future__ import annotations

import onnx_ir as ir

from anan_onnx import activations
from anan_onnx.choices import Rule
from anan_onnx.params import AnanParams

__all__ = ["gains_non_negative", "is_monotone", "pool_after"]


def gains_non_negative(params: AnanParams, tunable: bool) -> bool:
    """Whether every gain stays >= 0: multiplicative rule with 1 - b >= 0 (a >= 0 always)."""
    return params.rule == Rule.MULTIPLICATIVE and params.b <= 1.0 and not tunable


def is_monotone(act: ir.Node | None) -> bool:
    """Whether an activation node is monotone non-decreasing (``None``: identity)."""
    if act is None:
        return True
    alpha = act.attributes.get("alpha")
    return activations.is_monotone(act.op_type, None if alpha is None else alpha.as_float())


def pool_after(conv: ir.Node, act: ir.Node | None) -> ir.Node | None:
    """The MaxPool that alone consumes the layer's output (after ``act``, if any), or None."""
    last = act if act is not None else conv
    value = last.outputs[0]
    users = [use.node for use in value.uses()]
    if value.is_graph_output() or len(users) != 1 or users[0].op_type != "MaxPool":
        return None
    pool = users[0]
    if len(pool.outputs) > 1 and pool.outputs[1] is not None and pool.outputs[1].uses():
        return None  # its Indices output is used: the positions matter, not just the max
    return pool
