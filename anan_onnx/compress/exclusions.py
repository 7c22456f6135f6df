"""Which nodes stay float32 when an ANAN model is compressed, and where the base matches it.

The astrocytes decide from the step-1 activity, computed from the target Conv's *input*
(windowed means) and from the Conv itself; their gains scale the Conv's output. So the
float32 *front* of an ANAN model is every ``anan/*`` node plus every node upstream of one
(the preprocessing between the graph input and the target Conv, e.g. a Transpose). The
*boundary* tensors are what the front hands to the rest of the network (the rewrite keeps
their names: the output of the layer block it replaced). In the base model the matching
front is every node upstream of those same boundary tensors (target Conv, activation, pool
and preprocessing), so both fronts feed identical tails.

Pattern split::

    input -> [Transpose] -> anan/* subgraph -> boundary -> Conv2 -> ... -> output
             '------ FP32 front (excluded) ------'        '-- compressed tail --'
"""

from __future__ import annotations

import onnx

ANAN_PREFIX = "anan/"

__all__ = ["anan_front", "base_front", "boundary_tensors", "name_nodes"]


def name_nodes(model: onnx.ModelProto) -> None:
    """Gives unnamed nodes a stable name: exclusion lists are lists of node names."""
    used = {n.name for n in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            candidate = f"node_{i}_{node.op_type}"
            while candidate in used:
                candidate += "_"
            node.name = candidate
            used.add(candidate)


def ancestors(graph: onnx.GraphProto, tensors: set[str]) -> set[str]:
    """Names of the nodes that (transitively) produce any of ``tensors``."""
    producer = {out: node for node in graph.node for out in node.output if out}
    seen: set[str] = set()
    stack = [producer[t] for t in tensors if t in producer]
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(producer[t] for t in node.input if t in producer)
    return seen


def anan_front(model: onnx.ModelProto) -> set[str]:
    """The ``anan/*`` nodes and every node upstream of them (names)."""
    anan = [n for n in model.graph.node if n.name.startswith(ANAN_PREFIX)]
    inputs = {t for n in anan for t in n.input if t}
    return {n.name for n in anan} | ancestors(model.graph, inputs)


def boundary_tensors(model: onnx.ModelProto, front: set[str]) -> set[str]:
    """Tensors produced inside ``front`` and read outside it (or graph outputs)."""
    produced = {t for n in model.graph.node if n.name in front for t in n.output if t}
    read = {t for n in model.graph.node if n.name not in front for t in n.input}
    read |= {o.name for o in model.graph.output}
    return produced & read


def base_front(base: onnx.ModelProto, boundary: set[str]) -> set[str]:
    """The base model's nodes upstream of the ANAN model's boundary tensors (names)."""
    return ancestors(base.graph, boundary)
