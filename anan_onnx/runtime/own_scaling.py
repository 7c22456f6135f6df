"""The model's own input scaling: a leading chain of constant ``Mul``/``Add``/``Sub``/``Div``
on the image input, read from the ONNX graph, and what it says the caller must feed.

A Keras ``Rescaling`` or ``Normalization`` input layer (keras.applications' built-in
preprocessing included) is exported by tf2onnx as such a chain, and so are the ``x / 255``
or ``(x - mean) / std`` of many other exporters. A model that scales its input itself must
be fed pixels, not pixels already scaled: scaling them again (the 1/255 default) would
feed it values 255 times too small. :func:`own_scaling` reads the chain as one affine map
per channel; :meth:`OwnScaling.pixel_scale` decides which pixel range the chain was built
for (docs/preprocessing.md states the rule).

Needs onnx and numpy only (``verify`` uses it to find a recorded preprocessing that
contradicts the graph).

Example:
    >>> from onnx import helper, TensorProto, numpy_helper
    >>> import numpy as np
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Mul", ["x", "s"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 3])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 3])],
    ...     [numpy_helper.from_array(np.float32([1 / 255]), "s")])
    >>> own = own_scaling(helper.make_model(graph), "NHWC", 3)
    >>> own.ops, own.pixel_scale()
    (('Mul 0.00392157',), 1.0)
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np
import onnx

from anan_onnx.affine_ops import AFFINE_OPS, affine_op
from anan_onnx.onnx_proto import GraphConstants

__all__ = ["PIXEL_RANGES", "OwnScaling", "own_scaling"]

#: The pixel scalings a chain may have been built for, tried in this order: raw pixels
#: 0-255 (``scale 1``), then fractions 0-1 (``scale 1/255``).
PIXEL_RANGES: tuple[float, ...] = (1.0, 1 / 255)
#: A chain normalises its input when the pixel range lands within +-NORMALISED, spread
#: over at least MIN_SPREAD (so that a 1/255 chain does not count as built for 0-1 input).
#: Standard normalisations stay within 3 (ImageNet mean/std: -2.12 to 2.64).
NORMALISED = 5.0
MIN_SPREAD = 0.25


@dataclasses.dataclass(frozen=True)
class OwnScaling:
    """A leading affine chain: the model computes ``x[c] * scale[c] + offset[c]`` first.

    Attributes:
        ops: the chain's nodes in words, e.g. ``("Mul 0.00784314", "Add -1")``.
        scale: float64 multiplier per channel (model channel order).
        offset: float64 shift per channel.
    """

    ops: tuple[str, ...]
    scale: np.ndarray
    offset: np.ndarray

    def pixel_scale(self) -> float | None:
        """What the caller must multiply 0-255 pixels by before the chain: ``1.0`` (raw
        pixels), ``1/255`` (fractions 0-1), or ``None`` when the chain does not say.

        A range is the chain's when the chain maps it into a normalised range (within
        :data:`NORMALISED`, spread over :data:`MIN_SPREAD`); a mean subtraction alone
        (Caffe: multiplier 1, means within 0-255) is built for raw pixels.
        """
        for pixel_scale in PIXEL_RANGES:
            low = self.offset
            high = self.offset + 255.0 * pixel_scale * self.scale
            ends = np.abs(np.concatenate([low, high]))
            if ends.max() <= NORMALISED and np.abs(high - low).min() >= MIN_SPREAD:
                return pixel_scale
        if np.allclose(self.scale, 1.0) and np.all((-self.offset >= 0) & (-self.offset <= 255)):
            return 1.0
        return None

    def describe(self) -> str:
        """The chain in words, e.g. ``Mul 0.00784314, Add -1``."""
        return ", ".join(self.ops)

    def contradiction(self, scale: object, offset: object) -> str | None:
        """Why recording ``x = pixel * scale + offset`` for this model is wrong (one line),
        or ``None`` when it is what the chain expects or the chain does not say.

        Example:
            >>> chain = OwnScaling(("Mul 0.00392157",), np.full(3, 1 / 255), np.zeros(3))
            >>> chain.contradiction(1.0, 0.0) is None, chain.contradiction(1 / 255, 0.0)[:26]
            (True, 'the model scales its input')
        """
        expected = self.pixel_scale()
        if expected is None:
            return None
        s = np.broadcast_to(np.asarray(scale, np.float64), self.scale.shape)
        o = np.broadcast_to(np.asarray(offset, np.float64), self.offset.shape)
        if np.allclose(s, expected, rtol=1e-6, atol=0) and np.allclose(o, 0.0, atol=1e-6):
            return None
        wanted = "pixels 0-255 as they are" if expected == 1 else "pixels / 255"
        option = "raw" if expected == 1 else "unit"
        return (
            f"the model scales its input itself ({self.describe()}), so it expects {wanted}, "
            f"but the recorded preprocessing scales them first (x = pixel * "
            f"{_short(np.asarray(scale))} + {_short(np.asarray(offset))}): they would be "
            f"scaled twice; convert with --preprocess {option} unless the model was trained "
            "on such input"
        )


def own_scaling(model: onnx.ModelProto, layout: str, channels: int) -> OwnScaling | None:
    """The leading constant ``Mul``/``Add``/``Sub``/``Div`` chain on the model's one image
    input, or ``None`` when it starts otherwise.

    The chain stops at the first node that is not one of them with a constant (initializer
    or ``Constant``) broadcast per channel or over everything, at a value used more than
    once or a graph output (the unscaled input would be needed elsewhere: not a
    preprocessing step), and at ``c / x``. A layout ``Transpose`` (NHWC <-> NCHW) is looked
    through: the constants after it are read in the other layout.

    Args:
        model: the ONNX model.
        layout: ``NHWC`` or ``NCHW``: where the channel axis is.
        channels: the number of input channels.
    """
    graph = model.graph
    constants = GraphConstants(graph)  # only the chain's few constants are converted
    inputs = [i.name for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        return None
    users: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in set(node.input):
            users[name].append(node)
    outputs = {o.name for o in graph.output}
    shapes = {"NHWC": (1, 1, 1, channels), "NCHW": (1, channels, 1, 1)}
    scale, offset = np.ones(channels), np.zeros(channels)
    ops: list[str] = []
    value = inputs[0]
    while value not in outputs and len(users[value]) == 1:
        node = users[value][0]
        turned = _layout_transpose(node, layout)
        if turned is not None:  # look through NHWC <-> NCHW: the chain may follow it
            layout, value = turned, node.output[0]
            continue
        step = _step(node, value, constants, shapes[layout])
        if step is None:
            break
        scale, offset = step(scale, offset)
        ops.append(f"{node.op_type} {_short(constants[_other(node, value)])}")
        value = node.output[0]
    if not ops:
        return None
    return OwnScaling(tuple(ops), scale, offset)


#: ``Transpose`` perms that turn one layout into the other
_TURNS = {("NHWC", (0, 3, 1, 2)): "NCHW", ("NCHW", (0, 2, 3, 1)): "NHWC"}


def _layout_transpose(node: onnx.NodeProto, layout: str) -> str | None:
    """The layout after ``node`` if it is a layout ``Transpose`` of ``layout``, else None."""
    if node.op_type != "Transpose":
        return None
    perm = next((tuple(a.ints) for a in node.attribute if a.name == "perm"), ())
    return _TURNS.get((layout, perm))


def _other(node: onnx.NodeProto, value: str) -> str:
    return node.input[1] if node.input[0] == value else node.input[0]


_Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _step(
    node: onnx.NodeProto,
    value: str,
    constants: Mapping[str, np.ndarray],
    channel_shape: tuple[int, ...],
) -> _Step | None:
    """``(scale, offset) -> (scale, offset)`` composing ``node`` after the chain, or None."""
    if node.op_type not in AFFINE_OPS or len(node.input) != 2 or len(node.output) != 1:
        return None
    if list(node.input).count(value) != 1:
        return None
    const = constants.get(_other(node, value))
    if const is None or const.dtype.kind != "f" or const.ndim > 4:
        return None
    try:
        if np.broadcast_shapes(const.shape, channel_shape) != channel_shape:
            return None
    except ValueError:
        return None
    c = np.broadcast_to(const.astype(np.float64), channel_shape).ravel()
    folded = affine_op(node.op_type, node.input[0] == value, c)  # the canonical form's folding
    if folded is None:
        return None
    a, b = folded
    return lambda s, o: (s * a, o * a + b)


def _short(values: np.ndarray) -> str:
    flat = np.unique(values.astype(np.float64).ravel())
    if flat.size == 1:
        return f"{flat[0]:.6g}"
    return "(" + ", ".join(f"{v:.6g}" for v in values.ravel()) + ")"
