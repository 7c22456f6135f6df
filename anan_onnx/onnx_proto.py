"""Read-only look-ups in an ONNX protobuf graph (``onnx.GraphProto``).

Shared by the literal reference and the fast grid, which both work on the base model's
protobuf (the rewrite works on onnx-ir and has its own look-ups).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from anan_onnx.errors import AnanError

__all__ = ["GraphConstants", "constant_array", "float_tensor_max"]


def constant_array(graph: onnx.GraphProto, name: str) -> np.ndarray:
    """The float32 value of ``name``: an initializer or the output of a ``Constant`` node.

    Raises:
        AnanError: ``name`` is computed at run time.
    """
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init).astype(np.float32)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t).astype(np.float32)
    raise AnanError(f"{name!r} (an input of the target layer) is not a constant")


class GraphConstants(Mapping[str, np.ndarray]):
    """A graph's constants by name: its initializers and its ``Constant`` nodes' values,
    each converted to numpy only when looked up (then kept).

    Reading the few constants of a scaling chain or a quantisation scale so copies a few
    bytes, not every weight (VGG16: about 0.5 GB per convert or verify).
    """

    def __init__(self, graph: onnx.GraphProto) -> None:
        self._tensors: dict[str, onnx.TensorProto] = {i.name: i for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self._tensors[node.output[0]] = node.attribute[0].t
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self._tensors[name])
        return self._arrays[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def float_tensor_max(tensor: onnx.TensorProto) -> float:
    """The largest finite magnitude of a float32 tensor (0 when it has none), read in
    place from its raw bytes where it has them: no copy of the weights.

    Example:
        >>> float_tensor_max(numpy_helper.from_array(np.float32([1, -7e4, np.inf])))
        70000.0
    """
    if tensor.raw_data:
        values = np.frombuffer(tensor.raw_data, dtype="<f4")
    else:
        values = numpy_helper.to_array(tensor).ravel()
    finite = np.isfinite(values)
    high = float(np.max(values, where=finite, initial=0.0))
    low = float(np.min(values, where=finite, initial=0.0))
    return max(high, -low)
