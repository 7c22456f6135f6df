"""The final per-image, per-kernel scaling in a form onnxruntime keeps in its NCHWc layout.

Pattern rewritten (after ``pool_commute``: multiplicative rule, gains g >= 0)::

    act(g·P + β)                       with g (N, O, 1, 1) and P = MaxPool(conv(x, W0))
    becomes
    act(DwConv₁,β(P ⊙ Resize(SelectConv(g))))

On x86 CPUs onnxruntime runs convolutions and pools in a blocked channel layout (NCHWc).
Its layout pass keeps a binary op blocked only when both operands are blocked tensors of
provably equal shape, so ``g·P`` with a broadcast (N, O, 1, 1) gain sends P back to NCHW
and the next layer's input forward again: two reorders, and Mul, Add and the activation
unfused, about 10 % of the paper's CNN at batch 64. Here instead the gain enters the
blocked layout through a convolution with constant weights (the gains as an (N, 1, O, 1)
column, an O×1 kernel that selects entry o for output channel o: onnxruntime reads such a
one-channel input without a reorder), is repeated over the map by a nearest-neighbour
``Resize`` with static integer scales (blocked too), and multiplies P elementwise; β and
the activation are an identity depthwise convolution with that bias, into which
onnxruntime fuses Relu, Sigmoid or Tanh.

Every step is exact: the selecting convolution adds exact zeros to 1·g, the identity
convolution computes 1·v + β, and nearest ``Resize`` copies, so the output is
bit-identical to ``act(g·P + β)``.

The shape the blocked ``Mul`` needs is declared on the values (the batch axis by name), as
onnx's shape inference loses the symbolic batch through ``Resize``. Where onnxruntime has
no NCHWc kernels (ARM CPUs, GPUs, other runtimes) this form costs a little more than the
broadcast one; ``scaling='broadcast'`` keeps the plain form.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from anan_onnx.choices import Scaling
from anan_onnx.rewrite.builder import GraphBuilder

__all__ = ["SCALINGS", "blocked_scaling", "can_block"]

#: How the final gains are applied: onnxruntime's blocked layout, or plain broadcast ops.
SCALINGS = Scaling.ALL

# The largest NCHWc block onnxruntime uses (AVX-512); channel counts it divides stay blocked.
_BLOCK = 16


def can_block(pooled: ir.Value) -> bool:
    """Whether the pooled map has a known size and a channel count in whole blocks."""
    shape = pooled.shape
    if shape is None or len(shape) != 4:
        return False
    channels, height, width = list(shape)[1:]
    known = all(isinstance(d, int) and d > 0 for d in (channels, height, width))
    return known and channels % _BLOCK == 0


def blocked_scaling(
    b: GraphBuilder,
    gain: ir.Value,
    pooled: ir.Value,
    bias: np.ndarray | None,
    name: str,
    *,
    column: bool = False,
) -> ir.Value:
    """``g·P + β`` as blocked-layout ops (see the module docstring); returns the value.

    Args:
        b: the graph builder of ``_rewrite``.
        gain: (N, O, 1, 1) gains, or an (N, 1, O, 1) column with ``column``.
        pooled: P, (N, O, H, W) with static H and W (:func:`can_block`).
        bias: β of shape (O,), or None.
        name: prefix of the node names.
        column: ``gain`` is already the column the selecting convolution reads.
    """
    channels, height, width = _static_chw(pooled)
    ones = b.const(f"{name}/identity", np.ones((channels, 1, 1, 1)))
    depthwise = {"group": channels, "kernel_shape": [1, 1]}
    if not column:
        shape = b.const_int(f"{name}/column", [0, 1, channels, 1])
        gain = b.named("Reshape", [gain, shape], f"{name}/gain_column")
    select = b.const(f"{name}/select", np.eye(channels).reshape(channels, 1, channels, 1))
    blocked_gain = b.named(
        "Conv", [gain, select], f"{name}/gain_blocked", kernel_shape=[channels, 1]
    )
    spread = b.named(
        "Resize",
        [
            blocked_gain,
            # roi is unused in this mode; a full-image one rather than an empty or missing
            # one, which onnxruntime's mobile checker reads as a dynamic shape
            b.const(f"{name}/roi", [0, 0, 0, 0, 1, 1, 1, 1]),
            b.const(f"{name}/repeat", [1, 1, height, width]),
        ],
        f"{name}/gain_map",
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    _declare_like(spread, pooled)
    scaled = b.named("Mul", [pooled, spread], f"{name}/scaled")
    _declare_like(scaled, pooled)
    if bias is None:
        return scaled
    return b.named(
        "Conv", [scaled, ones, b.const(f"{name}/bias", bias)], f"{name}/shifted", **depthwise
    )


def _static_chw(pooled: ir.Value) -> tuple[int, int, int]:
    """(C, H, W) of a map whose sizes :func:`can_block` found static."""
    assert pooled.shape is not None
    channels, height, width = (int(d) for d in list(pooled.shape)[1:])  # type: ignore[arg-type]
    return channels, height, width


def _declare_like(value: ir.Value, like: ir.Value) -> None:
    assert like.shape is not None  # a pooled map of known size (:func:`can_block`)
    value.type = like.type
    value.shape = ir.Shape(list(like.shape))
