"""The fast grid's two sub-models of the base network, cut at the target convolution.

(a) the **first layer**: the base graph up to the target Conv, giving its maps (M, or P
and N) and what the steps need of them (spatial means, max/min-pooled maps); (c) the
**rest**: the base graph after the target layer, fed gains and maps and computing
``Σ gain_i·map_i + β`` with the ANAN graph's own ops. See :mod:`anan_onnx.evaluation.fastgrid`.
Every name they add starts with :data:`PREFIX`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from anan_onnx.activations import ACTIVATIONS, is_monotone, node_activation
from anan_onnx.choices import Signal
from anan_onnx.errors import AnanError, first_line
from anan_onnx.limits import thread_count
from anan_onnx.onnx_build import float_value_info, make_node
from anan_onnx.onnx_proto import constant_array
from anan_onnx.params import AnanParams

__all__ = [
    "PREFIX",
    "SplitTarget",
    "cpu_session",
    "first_layer_model",
    "normalise",
    "rest_model",
    "split_target",
]

#: prefix of every node, input and output the sub-models add
PREFIX = "anan_fast/"


@dataclasses.dataclass
class SplitTarget:
    """What the fast path needs to know about the target convolution."""

    conv: onnx.NodeProto
    weight: np.ndarray
    bias: np.ndarray | None
    activation: onnx.NodeProto | None  # the single activation right after the conv
    numpy_activation: Callable[[np.ndarray], np.ndarray] | None  # for signal=post
    pool: onnx.NodeProto | None  # a MaxPool right after that activation, if any


def normalise(base: onnx.ModelProto, options: AnanParams, layer: str | None):
    """(normalised base, target name): the conversion's own normalisation and refusals."""
    # onnx-ir only here: the fast grid otherwise edits protobuf graphs
    import onnx_ir as ir

    from anan_onnx.convert.normalise import normalise_base

    model, target = normalise_base(base, options, layer)
    return ir.to_proto(model), target.name


def _users(graph: onnx.GraphProto, name: str) -> list[onnx.NodeProto]:
    return [n for n in graph.node if name in _node_inputs(n)]


def _sole_user(graph: onnx.GraphProto, name: str, op_types: Sequence[str]):
    """The one node reading ``name`` if it is of ``op_types`` and ``name`` is internal."""
    users = _users(graph, name)
    outputs = {o.name for o in graph.output}
    if len(users) == 1 and users[0].op_type in op_types and name not in outputs:
        return users[0]
    return None


def split_target(model: onnx.ModelProto, name: str, signal: str) -> SplitTarget:
    graph = model.graph
    conv = next(n for n in graph.node if n.op_type == "Conv" and n.name == name)
    weight = constant_array(graph, conv.input[1])
    bias = constant_array(graph, conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
    act = _sole_user(graph, conv.output[0], tuple(ACTIVATIONS))
    if act is not None:
        alpha = next((a.f for a in act.attribute if a.name == "alpha"), None)
        act = act if is_monotone(act.op_type, alpha) else None  # max-pooling commutes with it
    pool = None
    if act is not None:
        pool = _sole_user(graph, act.output[0], ("MaxPool",))
        if pool is not None and (len(pool.output) > 1 and pool.output[1]):
            pool = None  # the Indices output depends on which position won
    numpy_act = node_activation(graph, act) if signal == Signal.POST and act is not None else None
    return SplitTarget(conv, weight, bias, act, numpy_act, pool)


def _node_inputs(node: onnx.NodeProto) -> set[str]:
    """Names a node reads, including outer-scope names used inside its subgraphs."""
    names = {i for i in node.input if i}
    for attr in node.attribute:
        graphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for g in graphs:
            for inner in g.node:
                names |= _node_inputs(inner)
    return names


def _prune(graph: onnx.GraphProto) -> set[str]:
    """Drops nodes, initializers and inputs the outputs do not need; returns the names read."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed |= _node_inputs(node)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    inits = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    inputs = [i for i in graph.input if i.name in needed]
    del graph.input[:]
    graph.input.extend(inputs)
    return needed


def _float_info(name: str, shape: Sequence[int | str] | None) -> onnx.ValueInfoProto:
    return float_value_info(name, shape)


def _node(op: str, inputs: list[str], output: str, like: onnx.NodeProto | None = None):
    node = make_node(op, inputs, [output], output)
    if like is not None:
        node.attribute.extend(like.attribute)
    return node


def _splice(graph: onnx.GraphProto, at: onnx.NodeProto, new: list, drop: Sequence) -> None:
    """Inserts ``new`` where ``at`` is (keeps topological order) and removes ``drop``.

    Nodes are matched by name: the normalised base has unique node names.
    """
    nodes = list(graph.node)
    index = [n.name for n in nodes].index(at.name)
    dropped = {n.name for n in drop}
    kept = [n for n in nodes[:index] if n.name not in dropped]
    kept += new + [n for n in nodes[index:] if n.name not in dropped]
    del graph.node[:]
    graph.node.extend(kept)


def first_layer_model(
    base: onnx.ModelProto, target: SplitTarget, n_maps: int, outputs: Sequence[str]
) -> onnx.ModelProto:
    """Base graph up to the target conv, with outputs among ``map{i}`` (M, or P and N),
    ``mean{i}`` (their spatial means) and ``pool_max``/``pool_min`` (M max/min-pooled)."""
    model = onnx.ModelProto()
    model.CopyFrom(base)
    graph = model.graph
    conv, new = target.conv, []
    if n_maps == 1:  # the model's own W0, without bias: the graph's conv(x, W0)
        new.append(_node("Conv", [conv.input[0], conv.input[1]], f"{PREFIX}map0", conv))
    else:
        for i, part in enumerate((np.maximum(target.weight, 0), np.minimum(target.weight, 0))):
            graph.initializer.append(numpy_helper.from_array(part, f"{PREFIX}weight{i}"))
            new.append(
                _node("Conv", [conv.input[0], f"{PREFIX}weight{i}"], f"{PREFIX}map{i}", conv)
            )
    for i in range(n_maps):
        new.append(_node("GlobalAveragePool", [f"{PREFIX}map{i}"], f"{PREFIX}mean{i}"))
    if target.pool is not None:  # min-pool = -maxpool(-M): the same windows and padding
        m = f"{PREFIX}map0"
        new.append(_node("MaxPool", [m], f"{PREFIX}pool_max", target.pool))
        new.append(_node("Neg", [m], f"{PREFIX}neg_map"))
        new.append(_node("MaxPool", [f"{PREFIX}neg_map"], f"{PREFIX}neg_pool", target.pool))
        new.append(_node("Neg", [f"{PREFIX}neg_pool"], f"{PREFIX}pool_min"))
    _splice(graph, conv, new, drop=())
    del graph.output[:]
    graph.output.extend(_float_info(f"{PREFIX}{o}", ["n", "maps", "h", "w"]) for o in outputs)
    _prune(graph)
    return model


def rest_model(base: onnx.ModelProto, target: SplitTarget, n_maps: int, pooled: bool):
    """Base graph after the target layer, fed by gains and maps; (model, reads the image?).

    Maps plan: inputs ``map{i}``, ``gain{i}``; computes ``Σ gain_i·map_i + β`` (the ANAN
    graph's own ops) in place of the conv output. Pooled plan (multiplicative rule,
    Conv → monotone activation → MaxPool): inputs ``pool_max``, ``pool_min``, ``gain0``;
    computes ``act(g·pool + β)`` in place of the MaxPool output, taking the max-pooled map
    where g >= 0 and the min-pooled one where g < 0, since ``v ↦ act(g·v + β)`` is
    monotone and so commutes with taking a window's max (exactly, in float arithmetic too).
    """
    model = onnx.ModelProto()
    model.CopyFrom(base)
    graph = model.graph
    out_channels = target.weight.shape[0]
    image_input = _image_input(graph)
    new, inputs = [], []
    if pooled:
        assert target.pool is not None and target.activation is not None
        zero = f"{PREFIX}zero"
        graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), zero))
        new.append(_node("Less", [f"{PREFIX}gain0", zero], f"{PREFIX}negative"))
        new.append(
            _node(
                "Where",
                [f"{PREFIX}negative", f"{PREFIX}pool_min", f"{PREFIX}pool_max"],
                f"{PREFIX}map0",
            )
        )
        inputs = ["pool_max", "pool_min", "gain0"]
    else:
        inputs = [name for i in range(n_maps) for name in (f"map{i}", f"gain{i}")]
    terms = [f"{PREFIX}term{i}" for i in range(n_maps)]
    for i, term in enumerate(terms):
        new.append(_node("Mul", [f"{PREFIX}gain{i}", f"{PREFIX}map{i}"], term))
    total = terms[0]
    if n_maps == 2:
        total = f"{PREFIX}sum"
        new.append(_node("Add", terms, total))
    y = f"{PREFIX}response" if pooled else target.conv.output[0]
    if target.bias is not None:  # (1, O, 1, 1), as the ANAN graph adds it
        bias = target.bias.reshape(1, -1, 1, 1).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(bias, f"{PREFIX}bias"))
        new.append(_node("Add", [total, f"{PREFIX}bias"], y))
    else:
        new.append(_node("Identity", [total], y))
    drop: list[onnx.NodeProto] = [target.conv]
    if pooled:
        act, pool = target.activation, target.pool
        assert act is not None and pool is not None
        node = make_node(act.op_type, [y, *act.input[1:]], [pool.output[0]], act.name)
        node.attribute.extend(act.attribute)
        new.append(node)
        drop += [act, pool]
    _splice(graph, target.conv, new, drop)
    kept_inputs = list(graph.input)
    del graph.input[:]
    for name in inputs:
        dims = [1, 1] if name.startswith("gain") else ["h", "w"]
        graph.input.append(_float_info(f"{PREFIX}{name}", ["rows", out_channels, *dims]))
    graph.input.extend(kept_inputs)  # the image (if still read) and IR<4 initializer inputs
    needed = _prune(graph)
    return model, image_input in needed


def _image_input(graph: onnx.GraphProto) -> str:
    inits = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)


def cpu_session(model: onnx.ModelProto, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # the memory pattern keeps a second plan per input shape; the rest of the network sees
    # a new row count in nearly every run, so it only adds memory (results are unchanged)
    options.enable_mem_pattern = False
    if threads:
        options.intra_op_num_threads = thread_count(threads)
    try:
        onnx.checker.check_model(model)
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # a graph we cannot split is a bug, not a user error
        raise AnanError(
            f"cannot split the model around its target layer for fast tuning "
            f"({first_line(exc, 150)}): please report this with the model"
        ) from None
