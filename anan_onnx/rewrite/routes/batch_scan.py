"""The modulated stage image by image: a ``Scan`` over the batch (``scaling='scan'``).

Pattern rewritten (after the other routes have built the stage)::

    y = stage(x, g)                   x (N, C, H, W), g the per-image gains (N, ...)
    becomes
    y = Scan(x, g){ x_i, g_i ↦ stage(x_i[None], g_i[None])[0] }

The stage is every node between the layer's input and its output: the convolution, the pool
when the scaling moved past it (``pool_commute``), the final scaling and the activation. Each
image goes through the same operators with the same constants, so the output is
bit-identical to the batched stage.

Why: onnxruntime runs a node over the whole batch before the next one starts. At batch 64
the first layer's maps (2 MB per image for 128×128×32) leave the core's L2 cache, so the
pool and every elementwise pass of the scaling read them back from memory; the base CNN,
whose activation is fused into its convolution, pays that once, ANAN once per extra pass.
Image by image the maps stay in L2 between the nodes. The price is the Scan boundary: the
body's result leaves onnxruntime's blocked NCHWc layout and the next convolution reorders
it back, and each iteration runs the body's nodes anew, which costs more than it saves at
batch 1 (docs/performance.md has the figures). The body keeps its own copies of the
constants it reads: onnxruntime's layout pass blocks a convolution only when its weights
are initializers of the graph it sits in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from anan_onnx.rewrite.builder import GraphBuilder

__all__ = ["scan_stage"]


def scan_stage(
    b: GraphBuilder, x: ir.Value, gains: Sequence[ir.Value], output: ir.Value, name: str
) -> tuple[ir.Value, list[ir.Value]]:
    """Moves the nodes of ``b`` that compute ``output`` from ``x`` and ``gains`` into the body
    of a Scan over the batch; returns the Scan's output (same values as ``output``) and the
    outer constants the body now reads from copies of its own (to drop where unused).

    Args:
        b: the builder whose recorded nodes hold the stage.
        x: the layer's input, (N, C, H, W).
        gains: the final gains the stage reads; the non-constant ones are per image (batch
            first) and are scanned with ``x``.
        output: the stage's output, (N, ...).
        name: prefix of the Scan's node and value names.
    """
    name = b.name(name)
    stop = {x, *(g for g in gains if not _constant(g))}
    stage = _stage_nodes(b, output, stop)
    # per image: x, the gains, and any value the stage shares with the nodes outside it
    reads = dict.fromkeys(v for n in stage for v in n.inputs if v is not None)
    scanned = [v for v in reads if v in stop]
    body = b.__class__(b.dtype, b.prefix)  # records the body's own nodes and constants
    axes = body.const_int(f"{name}/axes", [0])
    inputs = [_per_image(v, f"{name}/{i}") for i, v in enumerate(scanned)]
    images = {
        v: body.named("Unsqueeze", [i, axes], f"{i.name}/batch")
        for v, i in zip(scanned, inputs, strict=True)
    }
    local: dict[ir.Value, ir.Value] = {}
    for node in stage:
        b._nodes.remove(node)  # noqa: SLF001 (the Tape keeps its nodes in a list)
        for index, value in enumerate(node.inputs):
            if value in images:
                node.replace_input_with(index, images[value])
            elif value is not None and _constant(value) and value.producer() is None:
                node.replace_input_with(index, _local_copy(value, local, name))
        body._nodes.append(node)  # noqa: SLF001
    result = body.named("Squeeze", [output, axes], f"{name}/image")
    graph = ir.Graph(
        inputs,
        [result],
        nodes=body.nodes,
        initializers=[*body.initializers, *local.values()],
        name=name,
    )
    scan = b.named("Scan", scanned, name, body=graph, num_scan_inputs=len(scanned))
    return scan, list(local)


def _stage_nodes(b: GraphBuilder, output: ir.Value, stop: set[ir.Value]) -> list[ir.Node]:
    """The recorded nodes ``output`` depends on without passing through ``stop``, in
    recorded (topological) order. A value that nodes outside the stage read too (the maps
    of ``signal='post'``, which the activities read) is computed outside and scanned."""
    while True:
        found = _ancestors(b, output, stop)
        shared = {
            v
            for n in found
            for v in n.outputs
            if v is not output and any(use.node not in found for use in v.uses())
        }
        if not shared:
            return [n for n in b.nodes if n in found]
        stop |= shared


def _ancestors(b: GraphBuilder, output: ir.Value, stop: set[ir.Value]) -> set[ir.Node]:
    recorded = set(b.nodes)
    found: set[ir.Node] = set()
    pending = [output]
    while pending:
        value = pending.pop()
        node = value.producer()
        if value in stop or node is None or node not in recorded or node in found:
            continue
        found.add(node)
        pending.extend(v for v in node.inputs if v is not None)
    return found


def _constant(value: ir.Value) -> bool:
    return value.const_value is not None or value.is_initializer()


def _per_image(value: ir.Value, name: str) -> ir.Value:
    """A body input for one image of ``value`` (the batch axis dropped)."""
    shape = None if value.shape is None else ir.Shape(list(value.shape)[1:])
    dtype = value.dtype if value.dtype is not None else ir.DataType.FLOAT
    return ir.Value(name=name, type=ir.TensorType(dtype), shape=shape)


def _local_copy(value: ir.Value, local: dict[ir.Value, ir.Value], name: str) -> ir.Value:
    """The body's own initializer for a constant of the outer graph (a new name: a subgraph
    may not redefine an outer name)."""
    if value not in local:
        tensor = value.const_value
        assert tensor is not None, "an initializer without a value is a graph input"
        copy = ir.tensor(np.asarray(tensor.numpy()), name=f"{name}/{value.name}")
        local[value] = ir.Value(
            name=copy.name, type=value.type, shape=value.shape, const_value=copy
        )
    return local[value]
