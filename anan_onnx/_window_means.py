"""Spatial means of a convolution's output without running the convolution.

Pattern replaced: ``GlobalAveragePool(Conv(x, W))`` (signal=pre, reduce=mean).

The mean over output positions of ``conv(x, W)[o]`` is ``Σ_{c,u,v} W[o,c,u,v]·S[c,u,v] / (H'W')``
where ``S[c,u,v]`` sums the input over the positions that kernel offset (u, v) reads. Those
positions form a row set × a column set, so ``S = A · x · Bᵀ`` with 0/1 matrices A (kh × H)
and B (kw × W) fixed by the geometry (padding reads zeros and drops out). Per image this is
two thin MatMuls over the input and one (C·kh·kw × O) MatMul: no pass over the layer's
(much larger) output maps.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ._conv_geometry import ConvGeometry

__all__ = ["offset_matrices", "kernel_matrix", "window_means"]


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


def kernel_matrix(weight: np.ndarray, group: int) -> np.ndarray:
    """(C·kh·kw × O) matrix of a grouped kernel (O × C/group × kh × kw), zeros across groups."""
    out_ch, group_ch, kh, kw = weight.shape
    in_ch = group_ch * group
    dense = np.zeros((out_ch, in_ch, kh, kw), weight.dtype)
    per_group = out_ch // group
    for o in range(out_ch):
        start = (o // per_group) * group_ch
        dense[o, start : start + group_ch] = weight[o]
    return dense.reshape(out_ch, -1).T


def window_means(
    b, x: ir.Value, geom: ConvGeometry, weights: list[np.ndarray], group: int, name: str
) -> list[ir.Value]:
    """Per weight tensor, the (N, O, 1, 1) spatial means of ``conv(x, weight)`` (no bias)."""
    rows, cols_t = offset_matrices(geom)
    out_ch = weights[0].shape[0]
    col_sums = b.op("MatMul", [x, b.const(f"{name}/columns", cols_t)], f"{name}/column_sums")
    window = b.op("MatMul", [b.const(f"{name}/rows", rows), col_sums], f"{name}/window_sums")
    flat = b.op(
        "Reshape", [window, b.const_int(f"{name}/flat_shape", [0, -1])], f"{name}/window_flat"
    )
    positions = geom.out_size[0] * geom.out_size[1]
    shape = b.const_int(f"{name}/mean_shape", [-1, out_ch, 1, 1])
    means = []
    for i, weight in enumerate(weights):
        matrix = b.const(f"{name}/kernel{i}", kernel_matrix(weight, group) / positions)
        mean = b.op("MatMul", [flat, matrix], f"{name}/mean{i}_flat")
        means.append(b.op("Reshape", [mean, shape], f"{name}/mean{i}"))
    return means
