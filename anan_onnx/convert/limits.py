"""What ``convert`` refuses before it rewrites: too large a graph, too many steps, and gains
that overflow float32 (the last check is shared with ``tune``, see :mod:`anan_onnx.gains`).
Every limit, with its reason: docs/limits.md.
"""

from __future__ import annotations

import onnx

from anan_onnx import metadata as _metadata
from anan_onnx.errors import AnanError
from anan_onnx.gains import check_gains, input_bound
from anan_onnx.params import AnanParams, check_steps
from anan_onnx.rewrite.target import ConvTarget

__all__ = ["MAX_GRAPH_NODES", "check_graph_size", "check_target_gains", "input_bound_of"]

#: Most nodes a base model may have (main graph and subgraphs): real CNNs have hundreds to
#: a few thousand; a hand-built graph of millions would exhaust memory during the rewrite
#: and validation instead of failing with a message.
MAX_GRAPH_NODES = 100_000


def check_graph_size(model: onnx.ModelProto, k_max: int | None = None) -> None:
    """Refuses a base model of more than :data:`MAX_GRAPH_NODES` nodes, or a ``k_max``
    above :data:`anan_onnx.params.K_MAX`."""
    if k_max is not None:
        check_steps("k-max", k_max)
    nodes = _count(model.graph)
    if nodes > MAX_GRAPH_NODES:
        raise AnanError(
            f"the model has {nodes:,} nodes, more than the {MAX_GRAPH_NODES:,} anan-onnx "
            "rewrites (CNNs have hundreds to a few thousand): pass the CNN itself"
        )


def _count(graph: onnx.GraphProto) -> int:
    total = len(graph.node)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                total += _count(attr.g)
            total += sum(_count(g) for g in attr.graphs)
    return total


def input_bound_of(model: onnx.ModelProto) -> float:
    """Largest |input| of an image under the recorded preprocessing (1 when not recorded)."""
    meta = _metadata.read_metadata(model)
    try:
        return input_bound(float(meta["scale"]), float(meta["offset"]))
    except (KeyError, ValueError):
        return 1.0


def check_target_gains(
    base: onnx.ModelProto,
    target: ConvTarget,
    params: AnanParams,
    *,
    tunable: bool = False,
    k_max: int | None = None,
) -> None:
    """:func:`anan_onnx.gains.check_gains` for the target of ``base`` (the unrolled steps of
    a tunable model: ``k_max``)."""
    check_gains(
        params,
        target.weight,
        target.bias,
        x_max=input_bound_of(base),
        k=max(k_max or 0, params.k) if tunable else params.k,
        layer=target.name,
    )
