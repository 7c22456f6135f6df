"""The mobile-usability summary: which nodes NNAPI and CoreML would take, in how many
partitions, and which operators they lack.

Uses onnxruntime's own checker (``onnxruntime.tools.mobile_helpers.usability_checker``, the
code behind ``python -m onnxruntime.tools.check_onnx_model_mobile_usability``) the way that
tool does: the model optimised at the basic level (what an ``.ort`` conversion does
first), shapes inferred, and a node counted only when its inputs have fixed sizes. Beyond
the tool's log it reports, per execution provider, whether every ``anan/*`` node (the
astrocyte subgraph) is among the supported ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from pathlib import Path

__all__ = ["EpSupport", "mobile_support", "summary_lines"]

#: (name shown, the checker's supported-operators file; None: NNAPI's)
_EPS = (
    ("NNAPI", None),
    ("CoreML NeuralNetwork", "coreml_supported_neuralnetwork_ops.md"),
    ("CoreML MLProgram", "coreml_supported_mlprogram_ops.md"),
)


@dataclasses.dataclass(frozen=True)
class EpSupport:
    """One execution provider's share of the graph."""

    ep: str
    nodes: int
    supported: int
    partitions: int
    unsupported_ops: tuple[str, ...]
    anan_nodes: int
    anan_unsupported: tuple[str, ...]

    @property
    def whole_graph(self) -> bool:
        return self.partitions == 1 and self.supported == self.nodes

    def line(self) -> str:
        ops = ", ".join(self.unsupported_ops) or "none"
        anan = (
            f"all {self.anan_nodes} anan/* nodes supported"
            if not self.anan_unsupported
            else f"anan/* not supported: {', '.join(self.anan_unsupported)}"
        )
        return (
            f"{self.ep}: {self.supported}/{self.nodes} nodes in {self.partitions} "
            f"partition{'s' if self.partitions != 1 else ''}; unsupported ops: {ops}; {anan}"
        )


def mobile_support(model_path: Path) -> list[EpSupport]:
    """NNAPI, CoreML NeuralNetwork and CoreML MLProgram support of the ``.onnx`` file."""
    from onnxruntime.tools.mobile_helpers import usability_checker as checker
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    with tempfile.TemporaryDirectory(prefix="anan_mobile_") as work, _quiet():
        optimized = Path(work) / model_path.name
        optimize_model(model_path, optimized, use_external_initializers=True)
        model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
        results = []
        for ep, ops_file in _EPS:
            if ops_file is None:
                info = checker.check_nnapi_partitions(model, True)
            else:
                info = checker.check_coreml_partitions(model, True, ops_file)
            results.append(_support(ep, model.graph, info))
    return results


def summary_lines(support: list[EpSupport]) -> list[str]:
    """The summary printed by ``anan-onnx export --target mobile``."""
    return [s.line() for s in support]


def _support(ep: str, graph: object, info: object) -> EpSupport:
    nodes = list(graph.node)  # type: ignore[attr-defined]
    taken = {n.name for group in info.supported_groups for n in group}  # type: ignore[attr-defined]
    anan = [n.name for n in nodes if n.name.startswith("anan/")]
    return EpSupport(
        ep=ep,
        nodes=info.num_nodes,  # type: ignore[attr-defined]
        supported=info.num_supported_nodes,  # type: ignore[attr-defined]
        partitions=info.num_partitions,  # type: ignore[attr-defined]
        unsupported_ops=tuple(sorted(_op_names(info.unsupported_ops, nodes, taken))),  # type: ignore[attr-defined]
        anan_nodes=len(anan),
        anan_unsupported=tuple(n for n in anan if n not in taken),
    )


def _op_names(reported: set[str], nodes: list, taken: set[str]) -> set[str]:
    """Unsupported operator types: the checker's (``ai.onnx:Shape``, without the default
    domain) plus those of nodes left out for dynamic input sizes (``Shape (dynamic)``)."""
    names = {op.removeprefix("ai.onnx:") for op in reported}
    names |= {f"{n.op_type} (dynamic)" for n in nodes if n.name not in taken} - {
        f"{op} (dynamic)" for op in names
    }
    return names


@contextlib.contextmanager
def _quiet():
    """The checker logs through the root logger and prints: keep it off our output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
