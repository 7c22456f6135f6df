"""Find the convolution that the astrocytes attach to, and everything needed to rewrite it.

The target is the first ``Conv`` in topological order, or the one named by ``layer``. A
Keras layer name (``stem_conv``) also matches the ONNX node that tf2onnx made of it: through
the map the Keras exporter recorded (``keras_convs``, by kernel identity), else by a path
segment of the node name (``sequential/conv2d_1/convolution``). The target records why it
was chosen (``reason``), naming what precedes the first Conv: CNNs such as EfficientNet open
with a preprocessing block (Rescaling, Normalization, ZeroPadding2D) before it.

Before its weights are read, the target is put in canonical form
(:mod:`anan_onnx.canonical`): per-channel affine ops after it (a bias ``Add``, a
``BatchNormalization``, a scale-shift) are folded into it and layout ``Transpose`` nodes are looked
through, so that its output is exactly what its activation receives.

The weights must be a constant of the model (an initializer, a ``Constant`` node, or an
IR<4 graph input with an initializer); a convolution whose weights are computed at run
time is refused, as are quantized ones.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import onnx_ir as ir

from anan_onnx.activations import ACTIVATIONS
from anan_onnx.canonical import canonicalise_conv
from anan_onnx.errors import AnanError

__all__ = ["ConvTarget", "find_target"]

_QUANTIZED = ("ConvInteger", "QLinearConv")


@dataclasses.dataclass
class ConvTarget:
    """The target convolution of a model.

    Attributes:
        node: the ``Conv`` node.
        weight: its kernel ``W0`` (O × C/group × kh × kw) as a numpy array.
        bias: its bias (O,) or ``None``.
        activation: the single activation node that consumes the conv output, if any.
        keras_layer: the Keras layer the Conv was exported from, when recorded.
        reason: why this Conv is the target, in words.
    """

    node: ir.Node
    weight: np.ndarray
    bias: np.ndarray | None
    activation: ir.Node | None
    keras_layer: str | None = None
    reason: str = ""

    @property
    def name(self) -> str:
        return self.node.name or ""

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])


def find_target(
    graph: ir.Graph,
    layer: str | None = None,
    keras_convs: dict[str, str] | None = None,
    keras_before: dict[str, list[str]] | None = None,
) -> ConvTarget:
    """Returns the target convolution of ``graph`` (sorted topologically first).

    Args:
        graph: the model graph; it is sorted in place so that "first" means topological.
        layer: a node name or Keras layer name; ``None`` means the first ``Conv``.
        keras_convs: ``{Conv node name: Keras layer}`` recorded by the Keras exporter.
        keras_before: ``{Keras layer: the Keras layers before it}`` for the first layers.

    Raises:
        AnanError: no Conv, unknown layer, or weights that are not constant.
    """
    try:
        graph.sort()
    except Exception as exc:  # a cycle or a dangling input
        raise AnanError(
            f"the graph cannot be sorted topologically ({exc}): fix the model"
        ) from None
    convs = [n for n in graph if n.op_type == "Conv" and n.domain in ("", "ai.onnx")]
    if not convs and _nested_convs(graph):
        name, where, _ = _nested_convs(graph)[0]
        raise AnanError(
            f"the model's Convs are all inside If/Loop/Scan branches (first: {name!r} in "
            f"{where}): ANAN rewrites only Convs of the main graph"
        )
    if not convs:
        quantized = [n.op_type for n in graph if n.op_type in _QUANTIZED]
        hint = (
            f" (found {quantized[0]}: quantized convolutions are not supported)"
            if quantized
            else ""
        )
        fix = "convert the float model before quantizing it" if quantized else "ANAN needs a CNN"
        raise AnanError(f"the model has no float Conv node{hint}: {fix}")
    keras_convs = keras_convs or {}
    nested = _nested_convs(graph)
    if (
        layer is not None
        and layer in {name for name, _, _ in nested}
        and not any(n.name == layer for n in convs)
    ):
        where = next(w for name, w, _ in nested if name == layer)
        raise AnanError(
            f"Conv {layer!r} is inside {where}: ANAN rewrites only Convs of the main graph; "
            "pass --layer with a main-graph Conv"
        )
    node = convs[0] if layer is None else _by_name(convs, layer, keras_convs)
    _warn_skipped(graph, node, nested)
    folded = canonicalise_conv(graph, node)  # the kernel response the astrocytes watch
    weight = _constant(node.inputs[1], node, "weights")
    bias = None
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        bias = _constant(node.inputs[2], node, "bias")
    if weight.ndim != 4:
        raise AnanError(
            f"Conv {node.name!r} is {weight.ndim - 2}-D: only 2-D convolutions are supported"
        )
    if weight.dtype != np.float32:
        raise AnanError(
            f"Conv {node.name!r} has {weight.dtype} weights: only float32 models are supported "
            "(export the model in float32)"
        )
    keras_layer = keras_convs.get(node.name or "")
    reason = (
        f"named by --layer {layer!r}"
        if layer is not None
        else _first_reason(graph, node, (keras_before or {}).get(keras_layer or ""))
    )
    if folded:
        reason += f"; put in canonical form: {', '.join(folded)}"
    return ConvTarget(node, weight, bias, _activation_after(node), keras_layer, reason)


def _nested_convs(graph: ir.Graph) -> list[tuple[str, str, ir.Node]]:
    """(Conv name, where, main-graph node holding it) for every Conv inside a subgraph
    (If/Loop/Scan bodies, nested ones too)."""
    found: list[tuple[str, str, ir.Node]] = []

    def visit(g: ir.Graph, top: ir.Node | None) -> None:
        for node in g:
            for attr in node.attributes.values():
                for body in _graphs_of(attr):
                    where = f"the {attr.name} of {node.op_type} {node.name!r}"
                    for inner in body:
                        if inner.op_type == "Conv" and inner.domain in ("", "ai.onnx"):
                            found.append((inner.name or "", where, top or node))
                    visit(body, top or node)

    visit(graph, None)
    return found


def _graphs_of(attr: ir.Attr) -> list[ir.Graph]:
    if attr.type == ir.AttributeType.GRAPH:
        return [attr.value]
    if attr.type == ir.AttributeType.GRAPHS:
        return list(attr.value)
    return []


def _warn_skipped(graph: ir.Graph, target: ir.Node, nested: list[tuple[str, str, ir.Node]]) -> None:
    """Says which Convs inside control flow that runs before the target were passed over."""
    if not nested:
        return
    before: list[ir.Node] = []
    for node in graph:
        if node is target:
            break
        before.append(node)
    skipped = [(name, where) for name, where, top in nested if any(top is n for n in before)]
    if skipped:
        listed = "; ".join(f"{name!r} in {where}" for name, where in skipped[:4])
        warnings.warn(
            f"Conv {listed} skipped: ANAN rewrites only Convs of the main graph, not inside "
            f"If/Loop/Scan branches; the target is {target.name!r} (pass --layer to choose)",
            stacklevel=3,
        )


def _by_name(convs: list[ir.Node], layer: str, keras_convs: dict[str, str]) -> ir.Node:
    for node in convs:
        if node.name == layer:
            return node
    matches = [n for n in convs if keras_convs.get(n.name or "") == layer]
    if not matches:
        # tf2onnx names nodes "<model>/<layer>_<n>/convolution": match a path segment.
        pattern = re.compile(rf"(^|/){re.escape(layer)}(_\d+)?(/|$)")
        matches = [n for n in convs if n.name and pattern.search(n.name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(repr(n.name) for n in matches[:8])
        raise AnanError(f"layer {layer!r} matches {len(matches)} Conv nodes; pass one of: {names}")
    names = ", ".join(repr(n.name) for n in convs[:8])
    keras = sorted({keras_convs[n.name] for n in convs[:8] if n.name in keras_convs})
    hint = f" (Keras layers: {', '.join(keras)})" if keras else ""
    raise AnanError(f"no Conv node named {layer!r}: pass --layer with one of: {names}{hint}")


def _first_reason(graph: ir.Graph, node: ir.Node, keras_before: list[str] | None) -> str:
    """ "the first Conv in topological order", and what comes before it."""
    if keras_before is not None:
        before = ", ".join(keras_before)
    else:
        before = ", ".join(dict.fromkeys(n.op_type for n in _upstream(graph, node)))
    after = f", after {before}" if before else ", fed by the model input directly"
    return f"the first Conv in topological order{after}"


def _upstream(graph: ir.Graph, node: ir.Node) -> list[ir.Node]:
    """The nodes that ``node``'s data input depends on, in topological order."""
    needed: set[int] = set()
    stack = [node.inputs[0]]
    while stack:
        value = stack.pop()
        producer = None if value is None else value.producer()
        if producer is not None and id(producer) not in needed:
            needed.add(id(producer))
            stack += [v for v in producer.inputs if v is not None]
    return [n for n in graph if id(n) in needed and n.op_type not in ("Constant", "Identity")]


def _constant(value: ir.Value | None, node: ir.Node, what: str) -> np.ndarray:
    tensor = None if value is None else ir.convenience.get_const_tensor(value)
    if tensor is None:
        raise AnanError(
            f"the {what} of Conv {node.name!r} are computed at run time, not stored in the "
            "model: ANAN needs constant weights (export the model with its weights folded)"
        )
    return np.asarray(tensor.numpy())


def _activation_after(node: ir.Node) -> ir.Node | None:
    users = [use.node for use in node.outputs[0].uses()]
    if (
        len(users) == 1
        and users[0].op_type in ACTIVATIONS
        and not node.outputs[0].is_graph_output()
    ):
        return users[0]
    return None
