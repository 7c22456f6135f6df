"""FP16 conversion (onnxconverter-common) of the tail, with the FP32 front put back intact.

``convert_float_to_float16(node_block_list=...)`` keeps blocked nodes' *arithmetic* in float32
but still stores their weights in float16 (with Casts back to float32) and round-trips their
inputs through float16, which would round the astrocytes' kernels and the image itself. So
the converted model is only used for its tail: the original float32 front nodes and weights
are spliced back in, and each boundary tensor gets one Cast to float16.

Nothing is clamped: onnxconverter-common's defaults clamp every weight above 1e4 to 1e4 and
lift every magnitude below 1e-7 (float16 holds up to 65504 and down to 2**-24), which
silently changes a model with large weights. The converter is given float16's own limits,
and a tail node that reads a finite weight beyond 65504 stays float32 (blocked, with its
original float32 weights put back) instead.

Pattern rewritten::

    converted:  input -> Cast16 -> Cast32 -> front(w16 -> Cast32) -> Cast16 -> tail16 -> out
    spliced:    input -----------------> front(w32) -> t_fp32 -> Cast16 -> tail16 -> out
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Set

import numpy as np
import onnx

from anan_onnx.compress.exclusions import ancestors, boundary_tensors
from anan_onnx.errors import AnanError, first_line
from anan_onnx.install_hint import install_hint
from anan_onnx.onnx_build import make_node
from anan_onnx.onnx_proto import float_tensor_max

__all__ = ["FLOAT16_MAX", "METHOD", "beyond_float16", "to_fp16"]

METHOD = "fp16"
#: the largest finite float16 and the smallest positive (subnormal) one
FLOAT16_MAX = float(np.finfo(np.float16).max)
FLOAT16_TINY = float(np.finfo(np.float16).smallest_subnormal)


def to_fp16(model: onnx.ModelProto, keep_fp32: set[str]) -> tuple[onnx.ModelProto, list[str]]:
    """``model`` in float16, except the nodes named in ``keep_fp32`` (the front, spliced
    back intact) and the nodes :func:`beyond_float16` finds; I/O stays float32.

    Returns:
        the converted model, and the tail nodes kept float32 for their out-of-range weights.
    """
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise AnanError(f"--fp16 needs onnxconverter-common: {install_hint('compress')}") from None
    wide = sorted(beyond_float16(model) - keep_fp32)
    try:
        with warnings.catch_warnings():  # its "truncated" notes: only the front is clamped,
            warnings.simplefilter("ignore")  # and the front is replaced by the original below
            converted = float16.convert_float_to_float16(
                model,
                min_positive_val=FLOAT16_TINY,
                max_finite_val=FLOAT16_MAX,
                keep_io_types=True,
                node_block_list=sorted(keep_fp32) + wide,
            )
    except Exception as exc:
        raise AnanError(
            f"the FP16 conversion failed ({first_line(exc)}): try --int8, or report the model"
        ) from None
    _restore_wide(model, converted)
    if keep_fp32:
        _splice(model, converted, keep_fp32)
    return converted, wide


def _restore_wide(original: onnx.ModelProto, converted: onnx.ModelProto) -> None:
    """Puts back the float32 initializers float16 cannot hold: the converter stores even a
    blocked node's weights in float16 (clamped) and Casts them back to float32 before the
    node, so the original tensor makes that Cast a no-op (every reader is blocked)."""
    wide = {i.name: i for i in original.graph.initializer if _too_wide(i)}
    for init in converted.graph.initializer:
        if init.name in wide:
            init.CopyFrom(wide[init.name])


def beyond_float16(model: onnx.ModelProto) -> set[str]:
    """Nodes that read a float32 initializer (or hold a Constant) with a finite magnitude
    above :data:`FLOAT16_MAX`: float16 cannot hold it, so the node must stay float32."""
    wide = {i.name for i in model.graph.initializer if _too_wide(i)}
    found = {n.name for n in model.graph.node if wide & set(n.input)}
    for node in model.graph.node:
        if node.op_type == "Constant" and any(a.t and _too_wide(a.t) for a in node.attribute):
            found.add(node.name)
    return found


def _too_wide(tensor: onnx.TensorProto) -> bool:
    # read in place: no copy of each weight (this scans every float32 initializer)
    return tensor.data_type == onnx.TensorProto.FLOAT and float_tensor_max(tensor) > FLOAT16_MAX


def _splice(original: onnx.ModelProto, converted: onnx.ModelProto, front: set[str]) -> None:
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
            make_node("Cast", [f"{t}_fp32"], [t], f"{t}_to_fp16", to=onnx.TensorProto.FLOAT16)
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


def _used(
    initializers: Iterable[onnx.TensorProto],
    nodes: list[onnx.NodeProto],
    also: Set[str] = frozenset(),
) -> list[onnx.TensorProto]:
    names = {i for n in nodes for i in n.input} | also
    return [
        onnx.TensorProto.FromString(t.SerializeToString()) for t in initializers if t.name in names
    ]
