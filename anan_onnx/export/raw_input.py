"""``export --raw-input``: the exported model takes decoded pixels and carries its own
preprocessing as standard operators, so an engine needs only decode and resize.

Pattern::

    pixels (uint8, N x H x W x C, RGB or grey, 0-255)
      -> Cast(float32) [-> Gather(axis 3, [2, 1, 0]) where the model wants BGR]
      -> Mul(scale) [-> Add(offset)] [-> Transpose to NCHW]  -> the model's old input

the same float32 operations, in the same order, as the project's own preprocessing
(:func:`anan_onnx.runtime.image_files.to_model_input`), so the outputs are the float model's.
The recorded preprocessing then reads "pixels as decoded": NHWC, RGB, scale 1, offset 0,
and ``anan.raw_input = uint8``. Resizing (and ``aspect``) stays with the caller.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from anan_onnx.errors import AnanError
from anan_onnx.metadata import read_metadata, write_metadata
from anan_onnx.onnx_build import make_node, tensor_value_info
from anan_onnx.runtime.inputs import InputSpec

__all__ = ["RAW_INPUT", "add_raw_input", "raw_pixels", "raw_spec"]

#: the name of the pixel input
RAW_INPUT = "pixels"


def raw_spec(model: onnx.ModelProto) -> InputSpec:
    """The recorded preprocessing the pixel prefix implements.

    Raises:
        AnanError: the model records no input size (nothing to implement).
    """
    metadata = read_metadata(model)
    if "height" not in metadata:
        raise AnanError(
            "--raw-input needs the model's recorded preprocessing (layout, size, scale): "
            "convert the base model again with anan-onnx convert (--preprocess ... if needed)"
        )
    return InputSpec.from_metadata(metadata)


def add_raw_input(model: onnx.ModelProto) -> None:
    """Replaces the model's image input by :data:`RAW_INPUT` and the prefix (in place)."""
    spec = raw_spec(model)
    graph = model.graph
    initialized = {i.name for i in graph.initializer}
    image = next(v for v in graph.input if v.name not in initialized)
    batch = onnx.TensorShapeProto.Dimension()
    batch.CopyFrom(image.type.tensor_type.shape.dim[0])
    scale, offset = spec.affine()
    nodes, value = (
        [make_node("Cast", [RAW_INPUT], ["raw/float"], "raw/cast", to=TensorProto.FLOAT)],
        "raw/float",
    )
    constants = [numpy_helper.from_array(scale, "raw/scale")]
    if spec.channel_order == "BGR" and spec.channels == 3:
        constants.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), "raw/bgr"))
        nodes.append(make_node("Gather", [value, "raw/bgr"], ["raw/bgr_pixels"], "raw/bgr", axis=3))
        value = "raw/bgr_pixels"
    steps = [("Mul", "raw/scale")]
    if offset.any():  # as to_model_input: no Add of zeros
        constants.append(numpy_helper.from_array(offset, "raw/offset"))
        steps.append(("Add", "raw/offset"))
    for i, (op, constant) in enumerate(steps):
        last = i == len(steps) - 1 and spec.layout == "NHWC"
        out = image.name if last else f"raw/{op.lower()}"
        nodes.append(make_node(op, [value, constant], [out], f"raw/{op.lower()}"))
        value = out
    if spec.layout == "NCHW":
        to_nchw = [0, 3, 1, 2]
        transpose = make_node("Transpose", [value], [image.name], "raw/transpose", perm=to_nchw)
        nodes.append(transpose)
    pixels = tensor_value_info(
        RAW_INPUT, TensorProto.UINT8, [1, spec.height, spec.width, spec.channels]
    )
    pixels.type.tensor_type.shape.dim[0].CopyFrom(batch)
    position = list(graph.input).index(image)
    graph.input.remove(image)
    graph.input.insert(position, pixels)
    graph.initializer.extend(constants)
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    write_metadata(
        model,
        {
            "layout": "NHWC",
            "scale": "1",
            "offset": "0",
            "channel_order": "RGB",
            "raw_input": "uint8",
        },
    )


def raw_pixels(spec: InputSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random decoded images as the raw model takes them (uint8 NHWC, RGB) and the
    float input the original model takes for them (``to_model_input``'s path)."""
    from anan_onnx.runtime.image_files import to_model_input

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, spec.height, spec.width, spec.channels), dtype=np.uint8)
    ordered = pixels[..., ::-1] if spec.channel_order == "BGR" and spec.channels == 3 else pixels
    return pixels, to_model_input(np.ascontiguousarray(ordered), spec)
