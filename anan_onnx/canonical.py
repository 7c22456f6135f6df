"""The canonical form of the target convolution: its output is what its activation receives.

Exporters write the same network in different ways: a Conv with its bias, or a Conv without
bias and an ``Add`` (the ONNX model zoo's MNIST-8, older PyTorch exports); a Conv followed by
a ``BatchNormalization`` or by a per-channel ``Mul``/``Add`` scale-shift; tf2onnx's NHWC
graphs with a layout ``Transpose`` between the Conv and its bias or activation. ANAN watches
the target Conv's kernel responses, so without a definition that ignores these choices the
astrocytes would see a different signal for each serialisation of the same mathematics.

The definition (docs/algorithm.md, "The kernel response"): the target Conv is first put in
canonical form. Every per-channel affine op that is the Conv output's only consumer (``Add``,
``Sub``, ``Mul``, ``Div`` by a constant that varies at most along the channel axis, and an
inference-mode ``BatchNormalization``) is folded into the Conv's weights and bias; a layout
``Transpose`` is looked through (a per-channel op after it is folded across it, and an
activation after it is moved before it). The canonical Conv's output, the pre-activation,
is then exactly the value the activation function receives. The folds are exact in real
arithmetic; in float32 the canonical model's outputs differ from the original's by rounding.

Under ``rule='additive'`` the canonical (folded) kernel is the one modulated: a negative
per-channel factor folded into ``W`` changes which of its weights are positive.

Both the conversion (through the rewrite's target finder) and the literal reference
canonicalise, so the reference stays exact on any serialisation it is given; on a base model
written by ``convert`` (already canonical) it changes nothing.

Example:
    >>> from anan_onnx.testing import build_cnn
    >>> model = ir.from_proto(build_cnn())  # Conv (bias inside) -> Relu: already canonical
    >>> canonicalise_conv(model.graph, next(n for n in model.graph if n.op_type == "Conv"))
    []
    >>> canonical_model(onnx.load("mnist-8.onnx"), "Convolution28")[1]  # doctest: +SKIP
    ["Add 'Plus30'"]
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnx_ir as ir

from anan_onnx.activations import ACTIVATIONS
from anan_onnx.affine_ops import AFFINE_OPS, affine_op

__all__ = ["canonical_model", "canonicalise_conv"]

_STANDARD = ("", "ai.onnx")
#: the ONNX default epsilon of BatchNormalization
_BN_EPSILON = 1e-5


@dataclasses.dataclass
class _Affine:
    """The folded map ``y ↦ scale·y + shift`` per output channel (float64, shape (O,))."""

    scale: np.ndarray
    shift: np.ndarray

    def then(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Composes with a further ``y ↦ scale·y + shift``."""
        self.scale, self.shift = self.scale * scale, self.shift * scale + shift


def canonicalise_conv(graph: ir.Graph, conv: ir.Node) -> list[str]:
    """Puts ``conv`` of ``graph`` in canonical form, in place (see the module docstring).

    Returns what was folded or moved, in words (empty: the Conv already was canonical, and
    the graph is unchanged). A Conv whose weights or bias are not float32 constants of 2-D
    kernels is left alone (the rewrite refuses it with its own message).
    """
    weight = _constant(conv.inputs[1] if len(conv.inputs) > 1 else None)
    bias_value = conv.inputs[2] if len(conv.inputs) > 2 else None
    bias = None if bias_value is None else _constant(bias_value)
    if weight is None or weight.ndim != 4 or weight.dtype != np.float32:
        return []
    if bias_value is not None and (bias is None or bias.dtype != np.float32):
        return []
    affine = _Affine(np.ones(weight.shape[0]), np.zeros(weight.shape[0]))
    changes: list[str] = []
    while (change := _step(graph, conv, affine)) is not None:
        changes.append(change)
    if np.any(affine.scale != 1) or np.any(affine.shift):
        _write(graph, conv, weight, bias, affine)
    return changes


def canonical_model(model: onnx.ModelProto, layer: str) -> tuple[onnx.ModelProto, list[str]]:
    """``model`` with its Conv named ``layer`` in canonical form, and what changed.

    The model itself is returned when nothing changes (or no such Conv exists)."""
    converted = ir.from_proto(model)
    conv = next((n for n in converted.graph if n.op_type == "Conv" and n.name == layer), None)
    changes = [] if conv is None else canonicalise_conv(converted.graph, conv)
    return (ir.to_proto(converted) if changes else model), changes


def _step(graph: ir.Graph, conv: ir.Node, affine: _Affine) -> str | None:
    """Folds or moves the next op after ``conv``; ``None`` when there is nothing to do."""
    channels = len(affine.scale)
    output = conv.outputs[0]
    user = _sole_user(graph, output)
    if user is None:
        return None
    folded = _affine_of(user, output, channels, axis=1)
    if folded is not None:
        affine.then(*folded)
        _bypass(graph, user, output)
        return f"{user.op_type} {user.name!r}"
    if not (user.op_type == "Transpose" and user.domain in _STANDARD):
        return None
    moved = user.outputs[0]
    after = _sole_user(graph, moved)
    perm = _perm(user)
    if after is None or perm is None:
        return None
    folded = _affine_of(after, moved, channels, axis=perm.index(1))
    if folded is not None:
        affine.then(*folded)
        _bypass(graph, after, moved)
        return f"{after.op_type} {after.name!r} (across Transpose {user.name!r})"
    if after.op_type in ACTIVATIONS and after.domain in _STANDARD:
        _swap(graph, user, after)
        return f"{after.op_type} {after.name!r} moved before Transpose {user.name!r}"
    return None


def _sole_user(graph: ir.Graph, value: ir.Value) -> ir.Node | None:
    """The one node of ``graph`` reading ``value``, if ``value`` is read by nothing else."""
    uses = list(value.uses())
    if value.is_graph_output() or len(uses) != 1 or uses[0].node.graph is not graph:
        return None
    return uses[0].node


def _perm(transpose: ir.Node) -> list[int] | None:
    """The permutation of a 4-D ``Transpose`` (default: reversed axes)."""
    perm = list(transpose.attributes.get_ints("perm", (3, 2, 1, 0)))
    return perm if sorted(perm) == [0, 1, 2, 3] else None


def _affine_of(
    node: ir.Node, data: ir.Value, channels: int, axis: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(scale, shift)`` per channel if ``node`` maps ``data`` to ``scale·data + shift``
    with the channels on ``axis``; else ``None`` (not a per-channel affine op of constants)."""
    if node.domain not in _STANDARD or len(node.outputs) < 1:
        return None
    if node.op_type == "BatchNormalization":
        return _batch_norm(node, data, channels, axis)
    if node.op_type not in AFFINE_OPS or len(node.inputs) != 2:
        return None
    left, right = node.inputs
    if (left is data) == (right is data):  # data on both sides, or on neither
        return None
    data_first = left is data
    c = _per_channel(right if data_first else left, channels, axis)
    return None if c is None else affine_op(node.op_type, data_first, c)


def _batch_norm(
    node: ir.Node, data: ir.Value, channels: int, axis: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(scale, shift)`` of an inference-mode BatchNormalization of ``data`` (its channel
    axis is 1), or ``None``."""
    if axis != 1 or len(node.inputs) != 5 or node.inputs[0] is not data:
        return None
    if node.attributes.get_int("training_mode", 0) or any(
        o.uses() or o.is_graph_output() for o in node.outputs[1:]
    ):
        return None
    values = [_constant(v) for v in node.inputs[1:]]
    if any(v is None or v.shape != (channels,) or v.dtype != np.float32 for v in values):
        return None
    gamma, beta, mean, var = (np.asarray(v, np.float64) for v in values)  # type: ignore[arg-type]
    factor = gamma / np.sqrt(var + node.attributes.get_float("epsilon", _BN_EPSILON))
    if not np.all(np.isfinite(factor)):
        return None
    return factor, beta - mean * factor


def _per_channel(value: ir.Value | None, channels: int, axis: int) -> np.ndarray | None:
    """A float32 constant that broadcasts along ``axis`` of a 4-D tensor only, as (O,)."""
    c = _constant(value)
    if c is None or c.dtype != np.float32 or c.ndim > 4 or not np.all(np.isfinite(c)):
        return None
    shape = (1,) * (4 - c.ndim) + c.shape
    if any(size != 1 for i, size in enumerate(shape) if i != axis) or shape[axis] not in (
        1,
        channels,
    ):
        return None
    return np.broadcast_to(c.reshape(-1).astype(np.float64), (channels,))


def _constant(value: ir.Value | None) -> np.ndarray | None:
    tensor = None if value is None else ir.convenience.get_const_tensor(value)
    return None if tensor is None else np.asarray(tensor.numpy())


def _bypass(graph: ir.Graph, node: ir.Node, data: ir.Value) -> None:
    """Removes ``node`` (folded): its readers read ``data``, which takes over its output's
    name (it may be a graph output)."""
    output = node.outputs[0]
    name = output.name
    ir.convenience.replace_all_uses_with(output, data, replace_graph_outputs=True)
    constants = [v for v in node.inputs if v is not None and v is not data]
    graph.remove(node, safe=True)
    output.name = None
    data.name = name
    for value in constants:
        _drop_if_unused(graph, value)


def _swap(graph: ir.Graph, transpose: ir.Node, activation: ir.Node) -> None:
    """``Conv → Transpose → act`` becomes ``Conv → act → Transpose`` (the activations are
    elementwise: they commute with a permutation of the axes)."""
    source, moved, output = transpose.inputs[0], transpose.outputs[0], activation.outputs[0]
    new_act = ir.Node(
        activation.domain,
        activation.op_type,
        [source, *activation.inputs[1:]],
        list(activation.attributes.values()),
        name=activation.name,
        num_outputs=1,
    )
    new_transpose = ir.Node(
        transpose.domain,
        "Transpose",
        [new_act.outputs[0]],
        list(transpose.attributes.values()),
        name=transpose.name,
        num_outputs=1,
    )
    _copy_type(source, new_act.outputs[0])
    _copy_type(output, new_transpose.outputs[0])
    graph.insert_before(activation, [new_act, new_transpose])
    ir.convenience.replace_all_uses_with(
        output, new_transpose.outputs[0], replace_graph_outputs=True
    )
    graph.remove([activation, transpose], safe=True)
    names = (output.name, moved.name)
    output.name = moved.name = None
    new_transpose.outputs[0].name, new_act.outputs[0].name = names


def _copy_type(source: ir.Value | None, target: ir.Value) -> None:
    if source is not None:
        target.type = source.type
        target.shape = None if source.shape is None else ir.Shape(list(source.shape))


def _write(
    graph: ir.Graph, conv: ir.Node, weight: np.ndarray, bias: np.ndarray | None, affine: _Affine
) -> None:
    """The Conv's weights and bias with ``affine`` folded in, as new initializers (the old
    ones may be shared with other nodes; they are dropped when no longer read)."""
    old = [v for v in conv.inputs[1:3] if v is not None]
    name = conv.name or "conv"
    if np.any(affine.scale != 1):
        folded = weight.astype(np.float64) * affine.scale[:, None, None, None]
        conv.replace_input_with(1, _initializer(graph, f"{name}/canonical_weight", folded))
    beta = np.zeros(len(affine.scale)) if bias is None else bias.astype(np.float64)
    new_bias = _initializer(graph, f"{name}/canonical_bias", beta * affine.scale + affine.shift)
    if len(conv.inputs) < 3:
        conv.resize_inputs(3)
    conv.replace_input_with(2, new_bias)
    for value in old:
        _drop_if_unused(graph, value)


def _initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """A new float32 initializer of ``graph`` under a name no value has yet."""
    taken = {v.name for v in graph.inputs} | set(graph.initializers)
    taken |= {v.name for node in graph for v in node.outputs}
    unique, i = name, 1
    while unique in taken:
        unique, i = f"{name}_{i}", i + 1
    tensor = ir.tensor(np.asarray(array, np.float32), name=unique)
    value = ir.val(unique, tensor.dtype, array.shape, const_value=tensor)
    graph.register_initializer(value)
    return value


def _drop_if_unused(graph: ir.Graph, value: ir.Value) -> None:
    """Removes an initializer nothing reads any more (not one that is also a graph input)."""
    name = value.name
    if (
        name is not None
        and graph.initializers.get(name) is value
        and not value.uses()
        and not value.is_graph_input()
        and not value.is_graph_output()
    ):
        del graph.initializers[name]
