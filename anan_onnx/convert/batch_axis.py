"""Freeing a fixed batch axis, as exporters without dynamic axes write it.

Pattern: an image input (and outputs) of fixed batch size N, and ``Reshape`` shapes that
start with N (``x.view(x.size(0), -1)`` folded to ``[N, -1]``), become a ``batch`` axis
and shapes starting with 0 (copy the input's batch). The change is accepted only if the
outputs at batch 1 and N + 2 equal the fixed model's: nothing is changed silently.
"""

from __future__ import annotations

import onnx

from anan_onnx.errors import AnanError

__all__ = ["free_fixed_batch"]


def free_fixed_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """Makes a fixed batch axis (``torch.onnx.export`` without ``dynamic_axes``) dynamic.

    The literal reference runs one image at a time and ``verify`` runs many, so the base
    model needs a free batch axis. ``Reshape`` shapes that start with the fixed batch size
    (``x.view(x.size(0), -1)`` folded to ``[N, -1]``) get ``0`` (copy the input's batch)
    there. The result must give the fixed-batch model's outputs at batch 1 and at batch
    N + 2, or the model is refused: nothing is changed silently.
    """
    inputs = _image_inputs(model)
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        return model
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return model
    batch = dims[0].dim_value
    free = onnx.ModelProto()
    free.CopyFrom(model)
    for value in [*_image_inputs(free), *free.graph.output]:
        axes = value.type.tensor_type.shape.dim
        if axes and axes[0].HasField("dim_value") and axes[0].dim_value == batch:
            axes[0].dim_param = "batch"
    del free.graph.value_info[:]
    reshapes = _free_reshapes(free.graph, batch)
    try:
        same = _same_outputs(model, free, batch, [int(d.dim_value) for d in dims[1:]])
    except Exception:
        same = False
    if not same:
        raise AnanError(
            f"the model has a fixed batch size of {batch} that its graph depends on "
            f"({reshapes} Reshape shape(s) adjusted, outputs still differ): re-export it with "
            "a dynamic batch axis, e.g. torch.onnx.export(..., dynamic_axes={'input': {0: "
            "'batch'}})"
        )
    return free


def _image_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _free_reshapes(graph: onnx.GraphProto, batch: int) -> int:
    """Points Reshapes whose constant shape starts with ``batch`` at a copy starting with 0."""
    constants = {i.name: i for i in graph.initializer}
    constants.update(
        {
            n.output[0]: n.attribute[0].t
            for n in graph.node
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
        }
    )
    changed = 0
    for node in graph.node:
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        if node.op_type != "Reshape" or allowzero or node.input[1] not in constants:
            continue
        shape = onnx.numpy_helper.to_array(constants[node.input[1]])
        if shape.ndim != 1 or len(shape) < 2 or shape[0] != batch:
            continue
        shape = shape.copy()
        shape[0] = 0
        name = f"{node.input[1]}/free_batch{changed}"
        graph.initializer.append(onnx.numpy_helper.from_array(shape, name))
        node.input[1] = name
        changed += 1
    return changed


def _same_outputs(
    fixed: onnx.ModelProto, free: onnx.ModelProto, batch: int, image: list[int]
) -> bool:
    """Whether ``free`` at batch 1 and batch + 2 gives what ``fixed`` gives at ``batch``."""
    import numpy as np
    import onnxruntime as ort

    def session(model: onnx.ModelProto):
        options = ort.SessionOptions()
        options.log_severity_level = 4  # a failing run is an answer here, not an error
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    x = np.random.default_rng(0).random((batch + 2, *image), dtype=np.float32)
    name = _image_inputs(fixed)[0].name
    expected = session(fixed).run(None, {name: x[:batch]})
    runner = session(free)
    big = runner.run(None, {name: x})
    one = runner.run(None, {name: x[:1]})
    return all(
        np.allclose(b[:batch], e, rtol=1e-4, atol=1e-5)
        and np.allclose(o, e[:1], rtol=1e-4, atol=1e-5)
        for e, b, o in zip(expected, big, one, strict=True)
    )
