"""Read-only look-ups in an ONNX protobuf graph (``onnx.GraphProto``).

Shared by the literal reference and the fast grid, which both work on the base model's
protobuf (the rewrite works on onnx-ir and has its own look-ups).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from anan_onnx.errors import AnanError

__all__ = ["constant_array"]


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
