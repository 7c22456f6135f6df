"""Astrocytes on several Convs at once: which Convs (``--layers``) and the sequential rewrite.

Order of modulation (documented in docs/algorithm.md): the layers are modulated one after
the other in topological order. Layer 1's k presentations run on the image with every
later layer at its trained weights; layer 2's k presentations then see layer 1 at its final
(modulated) weights, and so on; the prediction uses every layer's final weights. Layer i's
statistic only depends on the layers before it, so this is exactly what rewriting each Conv
in place gives: each rewritten Conv watches its own input, which is the output of the
network as modulated so far. The graph is therefore one single-layer rewrite per target,
each with its own name prefix (``anan/`` for the first, ``anan/L2/``, ``anan/L3/`` ...).

A layer choice is ``all`` (every Conv of the main graph), ``first:N`` (the first N in
topological order) or a comma list of names (ONNX node or Keras layer names).
"""

from __future__ import annotations

import dataclasses

import onnx_ir as ir

from anan_onnx.errors import AnanError
from anan_onnx.options import LAYERS_ALL, LAYERS_FIRST, check_layers
from anan_onnx.params import AnanParams
from anan_onnx.rewrite.builder import NAME_PREFIX
from anan_onnx.rewrite.graph import build_anan_graph
from anan_onnx.rewrite.target import ConvTarget, find_target

__all__ = ["conv_names", "find_targets", "layer_prefix", "rewrite_layers"]

_ALL, _FIRST = LAYERS_ALL, LAYERS_FIRST


def conv_names(graph: ir.Graph) -> list[str]:
    """The names of the main graph's float Convs, in topological order."""
    graph.sort()
    return [n.name or "" for n in graph if n.op_type == "Conv" and n.domain in ("", "ai.onnx")]


def find_targets(
    graph: ir.Graph,
    layers: str,
    keras_convs: dict[str, str] | None = None,
    keras_before: dict[str, list[str]] | None = None,
) -> list[ConvTarget]:
    """The target Convs named by ``layers``, in topological order, each in canonical form.

    Raises:
        AnanError: an unknown or repeated name, ``first:N`` beyond the model's Convs, or a
            Conv that cannot be a target (:func:`find_target`).
    """
    layers = check_layers("--layers", layers)  # tune/evaluate reach here unchecked
    convs = conv_names(graph)
    if layers == _ALL:
        chosen = convs
    elif layers.startswith(_FIRST):
        count = int(layers[len(_FIRST) :])
        if count > len(convs):
            raise AnanError(
                f"--layers {layers}: the model has only {len(convs)} Convs: pass first:{len(convs)}"
            )
        chosen = convs[:count]
    else:
        chosen = [p.strip() for p in layers.split(",") if p.strip()]
    if not chosen:
        raise AnanError(f"--layers {layers}: the model has no Conv to modulate")
    targets = [find_target(graph, name, keras_convs, keras_before) for name in chosen]
    names = [t.name for t in targets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AnanError(f"--layers names Conv {repeated[0]!r} twice: name each Conv once")
    order = {name: i for i, name in enumerate(conv_names(graph))}
    targets.sort(key=lambda t: order[t.name])
    listed = ", ".join(t.name for t in targets)
    why = f"--layers {layers}: {len(targets)} Convs modulated in this order: {listed}"
    return [dataclasses.replace(t, reason=why) for t in targets]


def layer_prefix(index: int) -> str:
    """The node-name prefix of the ``index``-th target (0-based): the first keeps ``anan/``
    so a single-layer graph is unchanged."""
    return NAME_PREFIX if index == 0 else f"{NAME_PREFIX}L{index + 1}/"


def rewrite_layers(
    model: ir.Model,
    targets: list[ConvTarget],
    params: AnanParams,
    **options: object,
) -> None:
    """Rewrites every target in place with the same parameters (the sequential order of the
    module docstring); ``options`` are :func:`build_anan_graph`'s."""
    if len(targets) > 1 and options.get("tunable"):
        raise AnanError("--tunable takes one target layer: convert with --layer, or drop --tunable")
    for index, target in enumerate(targets):
        build_anan_graph(model, target, params, prefix=layer_prefix(index), **options)  # type: ignore[arg-type]
