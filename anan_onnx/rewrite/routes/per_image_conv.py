"""The modulated layer as ONE grouped convolution with per-image weights (fixed batch).

Pattern: ``Σᵢ gᵢ·conv(x, Wᵢ) + β`` (gains of shape (N, O, 1, 1)) becomes
``Conv(reshape(x, 1 × N·C × H × W), W(k) = Σᵢ gᵢ·Wᵢ as (N·O) × C/g × kh × kw, group = N·g)``,
reshaped back to N × O × H' × W'. ONNX's ``group`` attribute is static, so this needs a fixed
batch size. It spares the elementwise passes over the layer's output maps, and the layer's
activation can follow the Conv directly, where onnxruntime fuses it.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from anan_onnx.rewrite.builder import GraphBuilder

__all__ = ["per_image_conv"]


def per_image_conv(
    b: GraphBuilder,
    conv: ir.Node,
    x: ir.Value,
    weights: list[np.ndarray],
    gains: list[ir.Value],
    bias: np.ndarray | None,
    batch: int,
    name: str,
) -> ir.Value:
    """Output (1 × N·O × H' × W') of the grouped convolution; reshape it with :func:`unfold`."""
    out_ch = weights[0].shape[0]
    kernel_shape = b.const_int(f"{name}/gain_shape", [batch, out_ch, 1, 1, 1])
    per_image = None
    for i, (gain, weight) in enumerate(zip(gains, weights, strict=True)):
        g5 = b.named("Reshape", [gain, kernel_shape], f"{name}/gain{i}_5d")
        term = b.named(
            "Mul", [g5, b.const(f"{name}/kernel{i}", weight[None])], f"{name}/kernel{i}_scaled"
        )
        per_image = (
            term if per_image is None else b.named("Add", [per_image, term], f"{name}/kernel_sum")
        )
    stacked = b.named(
        "Reshape",
        [per_image, b.const_int(f"{name}/weight_shape", [batch * out_ch, *weights[0].shape[1:]])],
        f"{name}/weights",
    )
    folded = b.named(
        "Reshape", [x, b.const_int(f"{name}/input_shape", [1, -1, 0, 0])], f"{name}/input"
    )
    inputs = [folded, stacked]
    if bias is not None:
        inputs.append(b.const(f"{name}/bias", np.tile(bias, batch)))
    group = conv.attributes.get("group")
    return b.like(conv, inputs, name, group=batch * (group.as_int() if group is not None else 1))


def unfold(b: GraphBuilder, y: ir.Value, batch: int, out_ch: int, name: str) -> ir.Value:
    """1 × N·O × H' × W' back to N × O × H' × W'."""
    return b.named("Reshape", [y, b.const_int(f"{name}_shape", [batch, out_ch, 0, 0])], name)
