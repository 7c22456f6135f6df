"""A frozen TensorFlow graph → ONNX: tf2onnx's own steps, holding few copies of the weights.

``tf2onnx.convert.from_graph_def`` runs these steps too, but a large model (VGG16: 0.55 GB
of weights) needed ~40 times its size in memory there:

- it imports the graph and freezes it in a session once more, then discards that result
  (our graph is already frozen): two copies of the weights for nothing;
- every step's input stays referenced by the caller until the whole export returns (the
  GraphDef, the grappler-optimised GraphDef, the TensorFlow graph built from it);
- ``optimize_graph`` runs each of its ~12 ONNX optimisers, in 2–3 rounds, on a
  ``deepcopy`` of the graph, and the graph each one replaces is garbage in reference
  cycles, which only Python's cyclic collector frees; that collector rarely runs a full
  pass in a process holding TensorFlow's ~400k objects, so the copies piled up (one
  copy of all the weights per optimiser run).

Here each input is dropped once the next step has what it needs, and the optimisers run
the same way (each on a copy, its graph kept if it fails) with the replaced copies
collected before the next copy is made. The ONNX model is the same as
``from_graph_def`` gives. Measurements: docs/limits.md ("Memory").
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any

import onnx

__all__ = ["FrozenGraph", "frozen_to_onnx"]

_log = logging.getLogger(__name__)

#: the image input of the frozen graph, named ``input`` in the ONNX model
_INPUT = "input:0"


@dataclasses.dataclass
class FrozenGraph:
    """A frozen ``GraphDef`` (the image its only input) and its output tensor names.

    :func:`frozen_to_onnx` takes the ``GraphDef`` out (:meth:`take`), so that it is freed
    as soon as the export no longer needs it, not when the caller returns.
    """

    graph_def: Any
    outputs: list[str]

    def take(self) -> Any:
        graph_def, self.graph_def = self.graph_def, None
        if graph_def is None:
            raise RuntimeError("the frozen graph was already exported")
        return graph_def


def frozen_to_onnx(
    tf, frozen: FrozenGraph, *, opset: int, custom_op_handlers: dict
) -> onnx.ModelProto:
    """The ONNX model of ``frozen`` (input ``input``, dynamic batch), as ``from_graph_def``
    exports it with ``continue_on_error`` and default optimisers.

    Raises whatever tf2onnx raises; the caller words the error.
    """
    from tf2onnx import optimizer, tf_loader
    from tf2onnx.tfonnx import process_tf_graph

    inputs, outputs = [_INPUT], list(frozen.outputs)
    gc.collect()  # what the freezing left in cycles (a frozen ConcreteFunction: weights)
    with _young_objects_only():
        with tf.device("/cpu:0"), tf.Graph().as_default():
            graph_def = tf_loader.tf_optimize(inputs, outputs, frozen.take())  # grappler
        with tf.Graph().as_default() as tf_graph:
            tf.import_graph_def(graph_def, name="")
            del graph_def
            graph = process_tf_graph(
                tf_graph,
                continue_on_error=True,
                opset=opset,
                custom_op_handlers=custom_op_handlers,
                input_names=inputs,
                output_names=outputs,
                tensors_to_rename={_INPUT: "input"},
            )
        del tf_graph
        graph = _optimize(optimizer, graph)
        model = graph.make_model("converted from unknown")
        del graph
        gc.collect()  # the tf2onnx graph is cyclic: ~9 copies of the weights until collected
    return model


def _optimize(optimizer, graph):
    """tf2onnx's ONNX optimisers, each on a copy of the graph as ``optimize_graph`` does
    by default, with the copies that earlier optimisers replaced freed first."""
    defaults = getattr(optimizer, "_get_optimizers", None)
    if defaults is None:  # another tf2onnx: its own loop (correct, only hungrier)
        return optimizer.optimize_graph(graph)
    guarded = {name: _guarded(factory) for name, factory in defaults().items()}
    return optimizer.optimize_graph(graph, catch_errors=False, optimizers=guarded)


def _guarded(factory: Callable[[], Any]) -> Callable[[], _Guarded]:
    return lambda: _Guarded(factory())


class _Guarded:
    """One optimiser run as ``optimize_graph(catch_errors=True)`` runs it: on a deep copy,
    the graph unchanged if it raises. The graphs replaced before are collected first, so
    at most the graph and its copy exist while the copy is made."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.graph_been_opt = False

    def optimize(self, graph, iteration: int):
        gc.collect()
        current = copy.deepcopy(graph)
        try:
            result = self.inner.optimize(current, iteration) or graph
        except Exception:  # as tf2onnx: a failing optimiser is skipped, not fatal
            _log.warning("tf2onnx optimiser %s failed", type(self.inner).__name__, exc_info=True)
            return graph
        self.graph_been_opt = self.inner.graph_been_opt
        return result


@contextlib.contextmanager
def _young_objects_only() -> Iterator[None]:
    """``gc.collect()`` skips the objects that exist now (TensorFlow's and Keras's ~400k,
    alive anyway): a collection takes milliseconds instead of a quarter second."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
