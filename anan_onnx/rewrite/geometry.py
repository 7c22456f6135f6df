"""The spatial geometry of a Conv node: resolved padding and output size.

``auto_pad`` (SAME_UPPER, SAME_LOWER, VALID) is resolved to explicit pads exactly as the
ONNX operator definition says, so later passes can reason about which input rows and
columns each kernel offset reads.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

__all__ = ["ConvGeometry", "conv_geometry"]


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """Shapes and attributes of a 2-D convolution with known input size.

    Attributes:
        in_size: (H, W) of the input.
        kernel: (kh, kw).
        strides, dilations: per spatial axis.
        pads: (top, left, bottom, right), resolved from ``auto_pad`` when needed.
        out_size: (H', W') of the output.
    """

    in_size: tuple[int, int]
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]

    @property
    def out_size(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            (n + self.pads[i] + self.pads[i + 2] - ((k - 1) * d + 1)) // s + 1
            for i, (n, k, s, d) in enumerate(
                zip(self.in_size, self.kernel, self.strides, self.dilations, strict=True)
            )
        )


def conv_geometry(node: ir.Node, weight: np.ndarray) -> ConvGeometry | None:
    """The geometry of ``node``, or ``None`` when its input's height or width is not static."""
    x = node.inputs[0]
    shape = x.shape if x is not None else None
    if shape is None or len(shape) != 4:
        return None
    height, width = shape[2], shape[3]
    if not (isinstance(height, int) and isinstance(width, int)):
        return None
    in_size = (height, width)
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    strides = _pair(_ints(node, "strides", [1, 1]))
    dilations = _pair(_ints(node, "dilations", [1, 1]))
    auto_pad = node.attributes.get("auto_pad")
    mode = auto_pad.as_string() if auto_pad is not None else "NOTSET"
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(in_size, kernel, strides, dilations, upper=mode == "SAME_UPPER")
    elif mode == "VALID":
        pads = (0, 0, 0, 0)
    else:
        top, left, bottom, right = _ints(node, "pads", [0, 0, 0, 0])
        pads = (top, left, bottom, right)
    return ConvGeometry(in_size, kernel, strides, dilations, pads)


def _pair(values: list[int]) -> tuple[int, int]:
    first, second = values
    return first, second


def _ints(node: ir.Node, name: str, default: list[int]) -> list[int]:
    attr = node.attributes.get(name)
    return [int(v) for v in attr.as_ints()] if attr is not None else default


def _same_pads(
    in_size: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    upper: bool,
) -> tuple[int, int, int, int]:
    begins, ends = [], []
    for n, k, s, d in zip(in_size, kernel, strides, dilations, strict=True):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if upper else large)
        ends.append(large if upper else small)
    return (begins[0], begins[1], ends[0], ends[1])
