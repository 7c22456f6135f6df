"""Static shapes for an export target: a fixed batch, then onnx shape inference.

onnxruntime's own tool does the fixing (``onnxruntime.tools.onnx_model_utils``, the API of
``python -m onnxruntime.tools.make_dynamic_shape_fixed``): the batch axis of the inputs
becomes a number and the outputs' shapes follow. Shape arithmetic that then has only
constant inputs (``Shape -> Gather -> Concat -> Reshape`` on the batch axis, which the
mobile execution providers cannot take) is folded by the simplifier (``simplify.py``).
"""

from __future__ import annotations

import onnx
from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

from anan_onnx.errors import AnanError, first_line
from anan_onnx.limits import positive_int

__all__ = ["batch_of", "fix_batch", "infer_shapes"]


def batch_of(model: onnx.ModelProto) -> int | None:
    """The fixed batch of the model's first input, or ``None`` when it is dynamic."""
    dims = _caller_inputs(model)[0].type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None


def fix_batch(model: onnx.ModelProto, batch: int) -> None:
    """Sets the batch axis of every caller-fed input to ``batch`` (in place).

    Raises:
        AnanError: ``batch`` is not a positive integer, or the model's batch is already
            fixed to another value (the graph's shape arithmetic may depend on it).
    """
    batch = positive_int("batch", batch)
    current = batch_of(model)
    if current is not None and current != batch:
        raise AnanError(
            f"the model's batch is fixed to {current}: export with --batch {current}, "
            "or convert again with --batch N (or without --batch for a dynamic batch)"
        )
    for value in _caller_inputs(model):
        dims = value.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        if not shape or any(d == -1 for d in shape[1:]):
            raise AnanError(
                f"input {value.name} has dynamic sizes besides the batch ({_describe(dims)}): "
                "export a model converted with a fixed image size"
            )
        make_input_shape_fixed(model.graph, value.name, [batch, *shape[1:]])
    fix_output_shapes(model)


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every intermediate shape inferred (strict: a failure is an error)."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise AnanError(
            f"onnx shape inference failed on the model ({first_line(exc)}): "
            "export with --simplifier none, or report this with the model"
        ) from None


def _caller_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds (a tunable model's anan_k ... have initializers)."""
    initialized = {i.name for i in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initialized]


def _describe(dims: object) -> str:
    return "x".join(
        str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")  # type: ignore[attr-defined]
        for d in dims  # type: ignore[attr-defined]
    )
