"""FP16 conversion (onnxconverter-common) of the tail, with the FP32 front put back intact.

``convert_float_to_float16(node_block_list=...)`` keeps blocked nodes' *arithmetic* in float32
but still stores their weights in float16 (with Casts back to float32) and round-trips their
inputs through float16, which would round the astrocytes' kernels and the image itself. So
the converted model is only used for its tail: the original float32 front nodes and weights
are spliced back in, and each boundary tensor gets one Cast to float16.

Pattern rewritten::

    converted:  input -> Cast16 -> Cast32 -> front(w16 -> Cast32) -> Cast16 -> tail16 -> out
    spliced:    input -----------------> front(w32) -> t_fp32 -> Cast16 -> tail16 -> out
"""

from __future__ import annotations

from collections.abc import Iterable, Set

import onnx
from onnx import helper

from anan_onnx.compress.exclusions import ancestors, boundary_tensors
from anan_onnx.errors import AnanError, first_line

__all__ = ["METHOD", "to_fp16"]

METHOD = "fp16"


def to_fp16(model: onnx.ModelProto, keep_fp32: set[str]) -> onnx.ModelProto:
    """``model`` in float16, except the nodes named in ``keep_fp32``; I/O stays float32."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        from anan_onnx.install_hint import install_hint

        raise AnanError(f"--fp16 needs onnxconverter-common: {install_hint('compress')}") from None
    try:
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=sorted(keep_fp32)
        )
    except Exception as exc:
        raise AnanError(
            f"the FP16 conversion failed ({first_line(exc)}): try --int8, or report the model"
        ) from None
    if not keep_fp32:
        return converted
    return _splice(model, converted, keep_fp32)


def _splice(
    original: onnx.ModelProto, converted: onnx.ModelProto, front: set[str]
) -> onnx.ModelProto:
    boundary = boundary_tensors(original, front)
    upstream = ancestors(converted.graph, boundary)
    tail = [n for n in converted.graph.node if n.name not in upstream]
    head = [onnx.NodeProto.FromString(n.SerializeToString()) for n in original.graph.node]
    head = [n for n in head if n.name in front]
    casts = []
    for t in sorted(boundary):
        for node in head:  # the front now hands float32 ``t_fp32`` to one Cast
            node.output[:] = [f"{t}_fp32" if o == t else o for o in node.output]
        casts.append(
            helper.make_node(
                "Cast", [f"{t}_fp32"], [t], name=f"{t}_to_fp16", to=onnx.TensorProto.FLOAT16
            )
        )
    graph = converted.graph
    tail_inits = _used(graph.initializer, tail)
    # graph inputs with defaults (a --tunable model's anan_k ...) stay, even if unused
    inputs = {i.name for i in original.graph.input} - {i.name for i in tail_inits}
    head_inits = _used(original.graph.initializer, head, inputs)
    clash = {i.name for i in head_inits} & {i.name for i in tail_inits}
    for node in head:  # a constant shared by both halves: the front keeps a float32 copy
        node.input[:] = [f"{i}_fp32" if i in clash else i for i in node.input]
    for init in head_inits:
        if init.name in clash:
            init.name = f"{init.name}_fp32"
    del graph.node[:]
    graph.node.extend(head + casts + tail)
    del graph.initializer[:]
    graph.initializer.extend(head_inits + tail_inits)
    del graph.value_info[:]  # types changed at the seam: let the runtime infer them
    return converted


def _used(
    initializers: Iterable[onnx.TensorProto],
    nodes: list[onnx.NodeProto],
    also: Set[str] = frozenset(),
) -> list[onnx.TensorProto]:
    names = {i for n in nodes for i in n.input} | also
    return [
        onnx.TensorProto.FromString(t.SerializeToString()) for t in initializers if t.name in names
    ]
