"""ONNX protobuf pieces made with onnx-ir, for the code that edits ``onnx.ModelProto``.

``onnx.helper`` is banned outside the literal reference (ruff TID251, pyproject.toml): the
product builds graphs with onnx-ir. The conversion, the compression and the fast grid still
edit a few protobuf graphs in place (an ``onnx.ModelProto`` from tf2onnx or onnxruntime's
quantizer); these build the nodes and value infos they add through onnx-ir's serializer,
which writes the same bytes as ``onnx.helper`` did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

__all__ = [
    "attribute_value",
    "float_value_info",
    "make_node",
    "numpy_dtype",
    "tensor_value_info",
]


def make_node(
    op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str, **attributes: object
) -> onnx.NodeProto:
    """A node of the default domain; an empty input name is a missing optional input."""
    node = ir.node(
        op_type,
        [ir.Value(name=i) if i else None for i in inputs],
        attributes or None,  # type: ignore[arg-type]
        name=name,
        outputs=[ir.Value(name=o) for o in outputs],
    )
    return ir.serde.serialize_node(node)


def float_value_info(name: str, shape: Sequence[int | str] | None) -> onnx.ValueInfoProto:
    """A float32 tensor's value info; ``None``: shape unknown."""
    return tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def tensor_value_info(
    name: str, elem_type: int, shape: Sequence[int | str] | None
) -> onnx.ValueInfoProto:
    """A tensor's value info (``elem_type`` an ONNX element type); ``None``: shape unknown."""
    return ir.serde.serialize_value(
        ir.val(name, ir.DataType(elem_type), None if shape is None else ir.Shape(shape))
    )


def numpy_dtype(elem_type: int) -> np.dtype:
    """The numpy dtype of an ONNX tensor element type (``ValueError`` if there is none)."""
    return ir.DataType(elem_type).numpy()


def attribute_value(attribute: onnx.AttributeProto) -> Any:
    """An attribute's Python value (a float, an int, a list...)."""
    return ir.serde.deserialize_attribute(attribute).value
