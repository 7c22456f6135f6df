"""Spatial means of a convolution's output without reading the convolution's output.

Pattern replaced: ``GlobalAveragePool(Conv(x, W))`` (signal=pre, reduce=mean).

The mean over output positions of ``conv(x, W)[o]`` is ``Σ_{c,u,v} W[o,c,u,v]·S[c,u,v] / (H'W')``
where ``S[c,u,v]`` sums the input over the positions that kernel offset (u, v) reads. Those
positions form a row set × a column set, so ``S = A · x · Bᵀ`` with 0/1 matrices A (kh × H)
and B (kw × W) fixed by the geometry (padding reads zeros and drops out). Per image this is
two thin MatMuls over the input (rows first: a (kh × H) by (H × W) product per channel,
which onnxruntime runs well; columns first would be a product with only kw output columns)
and a convolution of the (C × kh × kw) window sums with W / (H'W'), a 1 × 1 output.

Where only the first step's activity is needed (every step reads it: the absorbing counter
with shared steps), ``window_means(..., column=True)`` takes the last product as a small MatMul
instead (the flattened window sums against W / (H'W')), giving the means as an (N, 1, O, 1)
column: the shape the blocked final scaling (``blocked_scaling``) reads the gains in, so
neither a reshape of the gains nor a blocked-layout convolution (which onnxruntime spreads
over its threads even for a 1 × 1 output) is needed.

The input has C channels where the layer's output has O (3 against 32 in the paper's
CNN), so this reads about a tenth of what a mean over the output maps reads; measured on
the paper's 128×128 CNN, it took 2–3 % off ANAN's latency at batch 64 and ~1 % at batch 1.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from anan_onnx.rewrite.builder import GraphBuilder
from anan_onnx.rewrite.geometry import ConvGeometry

__all__ = ["offset_matrices", "window_means", "window_sums"]


def offset_matrices(geom: ConvGeometry) -> tuple[np.ndarray, np.ndarray]:
    """A (kh × H) and Bᵀ (W × kw): which input rows/columns each kernel offset reads."""
    rows = _offset_matrix(
        geom.in_size[0],
        geom.kernel[0],
        geom.strides[0],
        geom.dilations[0],
        geom.pads[0],
        geom.out_size[0],
    )
    cols = _offset_matrix(
        geom.in_size[1],
        geom.kernel[1],
        geom.strides[1],
        geom.dilations[1],
        geom.pads[1],
        geom.out_size[1],
    )
    return rows, cols.T


def _offset_matrix(n: int, k: int, s: int, d: int, pad: int, out: int) -> np.ndarray:
    matrix = np.zeros((k, n))
    for u in range(k):
        read = np.arange(out) * s + u * d - pad
        read = read[(read >= 0) & (read < n)]
        matrix[u, read] = 1.0
    return matrix


def window_sums(b: GraphBuilder, x: ir.Value, geom: ConvGeometry, name: str) -> ir.Value:
    """(N, C, kh, kw): per kernel offset, the sum of the input positions it reads."""
    rows, cols_t = offset_matrices(geom)
    row_sums = b.named("MatMul", [b.const(f"{name}/rows", rows), x], f"{name}/row_sums")
    return b.named("MatMul", [row_sums, b.const(f"{name}/columns", cols_t)], f"{name}/window_sums")


def window_means(
    b: GraphBuilder,
    sums: ir.Value,
    geom: ConvGeometry,
    weight: np.ndarray,
    group: int,
    name: str,
    bias: np.ndarray | None = None,
    *,
    column: bool = False,
) -> ir.Value:
    """Spatial means of ``conv(x, weight)`` (+ ``bias``) from :func:`window_sums`.

    (N, O, 1, 1) from a convolution of the sums with W / (H'W'); with ``column``, an
    (N, 1, O, 1) column from one MatMul of the flattened sums (N, 1, C·kh·kw, 1) by
    W / (H'W') as an (O, C·kh·kw) matrix (zero outside each kernel's group).
    """
    positions = geom.out_size[0] * geom.out_size[1]
    if not column:
        inputs = [sums, b.const(f"{name}/kernel", weight / positions)]
        if bias is not None:
            inputs.append(b.const(f"{name}/bias", bias))
        # Every attribute spelled out: onnxruntime-web's WebGPU (JSEP) Conv reads kernel
        # geometry from the attributes and failed ("dilations should be 2D") without them.
        kh, kw = weight.shape[2:]
        return b.named(
            "Conv",
            inputs,
            name,
            group=group,
            kernel_shape=[kh, kw],
            strides=[1, 1],
            dilations=[1, 1],
            pads=[0, 0, 0, 0],
        )
    flat = b.named(
        "Reshape", [sums, b.const_int(f"{name}/flat_shape", [0, 1, -1, 1])], f"{name}/flat"
    )
    kernel = _dense_kernel(weight, group).reshape(len(weight), -1) / positions
    matrix = b.const(f"{name}/kernel", kernel)
    means = b.named("MatMul", [matrix, flat], f"{name}/mean" if bias is not None else name)
    if bias is None:
        return means
    return b.named("Add", [means, b.const(f"{name}/bias", bias.reshape(-1, 1))], name)


def _dense_kernel(weight: np.ndarray, group: int) -> np.ndarray:
    """(O, C/group, kh, kw) grouped kernel → (O, C, kh, kw), zero outside each kernel's group."""
    out_channels, per_group = weight.shape[:2]
    dense = np.zeros((out_channels, per_group * group, *weight.shape[2:]), weight.dtype)
    outputs_per_group = out_channels // group
    for o in range(out_channels):
        start = (o // outputs_per_group) * per_group
        dense[o, start : start + per_group] = weight[o]
    return dense
