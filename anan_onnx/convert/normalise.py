"""The base model as the rewrite sees it: shapes inferred, nodes named, target found.

The conversion rewrites this normalised base, and returns it so that the literal reference
finds the same layer by name; the fast grid splits the same normalised base around its
target without building an ANAN graph.
"""

from __future__ import annotations

import json

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import NameFixPass

from anan_onnx import metadata as _metadata
from anan_onnx.activations import ACTIVATIONS
from anan_onnx.choices import Signal
from anan_onnx.convert.keras_layers import KERAS_BEFORE, KERAS_CONVS
from anan_onnx.errors import AnanError
from anan_onnx.params import AnanParams
from anan_onnx.rewrite.layers import find_targets
from anan_onnx.rewrite.target import ConvTarget, find_target

__all__ = ["normalise_base", "normalise_base_layers"]


def normalise_base(
    base: onnx.ModelProto, params: AnanParams, layer: str | None = None
) -> tuple[ir.Model, ConvTarget]:
    """The normalised base (topological order, unique node names) and its target Conv.

    Args:
        base: the base CNN.
        params: the ANAN parameters (``signal='post'`` needs an activation after the target).
        layer: target Conv (node or Keras layer name); default the first Conv.

    Raises:
        AnanError: an ANAN model, no suitable Conv, or ``signal='post'`` without an
            activation right after the target.

    Example:
        >>> model, target = normalise_base(onnx.load("base.onnx"), AnanParams())  # doctest: +SKIP
        >>> base, layer = ir.to_proto(model), target.name  # doctest: +SKIP
    """
    model, keras = _prepared(base)
    target = find_target(model.graph, layer, *keras)
    _check_signal(params, target)
    return model, target


def normalise_base_layers(
    base: onnx.ModelProto, params: AnanParams, layers: str
) -> tuple[ir.Model, list[ConvTarget]]:
    """:func:`normalise_base` for several targets (``--layers``: ``all``, ``first:N`` or
    names), in topological order (:func:`anan_onnx.rewrite.layers.find_targets`)."""
    model, keras = _prepared(base)
    targets = find_targets(model.graph, layers, *keras)
    for target in targets:
        _check_signal(params, target)
    return model, targets


def _prepared(base: onnx.ModelProto) -> tuple[ir.Model, tuple[dict | None, dict | None]]:
    """The base with shapes inferred and every node named uniquely, and the Keras maps its
    exporter recorded (Conv node → Keras layer, Keras layer → the layers before it)."""
    recorded = _metadata.read_metadata(base)
    if _metadata.is_anan(recorded):
        raise AnanError("the model is already an ANAN model: convert the base model instead")
    model = ir.from_proto(_with_shapes(base))
    _name_unnamed_nodes(model.graph)
    NameFixPass()(model)
    return model, (_json_metadata(recorded, KERAS_CONVS), _json_metadata(recorded, KERAS_BEFORE))


def _check_signal(params: AnanParams, target: ConvTarget) -> None:
    """``signal='post'`` needs one activation right after the target."""
    if params.signal == Signal.POST and target.activation is None:
        users = [u.node.op_type for u in target.node.outputs[0].uses()]
        between = (
            " (a BatchNormalization, scale or bias sits between the Conv and its activation)"
            if set(users) & {"Mul", "Add", "BatchNormalization", "Div", "Sub"}
            else ""
        )
        raise AnanError(
            f"signal=post needs one activation ({', '.join(ACTIVATIONS)}) right after Conv "
            f"{target.name!r}, found {users or 'none'}{between}: use --signal pre"
        )


def _json_metadata(recorded: dict[str, str], key: str) -> dict | None:
    """A JSON map the Keras exporter recorded (anan_onnx/convert/keras_layers.py), or None."""
    try:
        value = json.loads(recorded[key])
    except (KeyError, ValueError):  # not a Keras export, or metadata edited by hand
        return None
    return value if isinstance(value, dict) else None


def _name_unnamed_nodes(graph: ir.Graph) -> None:
    """Names each unnamed node after its first output (CNTK and hand-made models name
    none), so ``--layer`` and the recorded target layer are meaningful."""
    for node in graph:
        if not node.name and node.outputs and node.outputs[0].name:
            node.name = node.outputs[0].name


def _with_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with inferred shapes: the rewrite needs the target's input height and width
    (exporters such as tf2onnx do not record them after their Transposes)."""
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model onnx cannot infer still converts, on the slower routes
        return model
