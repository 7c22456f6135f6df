"""Keras → ONNX export through tf2onnx. With :mod:`anan_onnx.convert.tf_to_onnx`, the only
module that imports TensorFlow (lazily).

tf2onnx's ``from_keras`` fails on reloaded Sequential models in Keras 3, so the model is
wrapped in a ``tf.function``, frozen by TensorFlow (every captured variable and tensor
becomes a constant, so a Keras model is always a one-input graph) and exported by the steps
of ``tf2onnx.convert.from_graph_def`` (:mod:`~anan_onnx.convert.tf_to_onnx`: run so that
few copies of the weights exist at once). The batch dimension stays dynamic.

TensorFlow's graph optimiser folds a per-channel scale that follows a bias-free ``Conv2D``
(a ``BatchNormalization``, a constant ``Mul``) into the kernel. Such a fold is undone: the
Conv gets the layer's kernel back (and its node the layer's name), followed by ``Mul`` (the
scale) and ``Add`` (the shift). The conversion then puts its target Conv in canonical form
(:mod:`anan_onnx.canonical`), which folds them again: the astrocytes watch what the
activation receives, whatever the exporter did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from anan_onnx.convert.keras_layers import KerasConvs
from anan_onnx.convert.tf_to_onnx import FrozenGraph, frozen_to_onnx
from anan_onnx.errors import AnanError, first_line
from anan_onnx.install_hint import install_hint
from anan_onnx.metadata import write_metadata
from anan_onnx.model_io import model_kind
from anan_onnx.onnx_build import make_node, numpy_dtype
from anan_onnx.options import DEFAULT_OPSET, check_opset

__all__ = ["export_with_tf2onnx", "quiet_native_logs"]


def export_with_tf2onnx(path: str | Path, *, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Exports a Keras model file (``.keras`` or ``.h5``) to an ONNX model in memory.

    Args:
        path: Keras 3 ``.keras`` archive or legacy HDF5 file (Sequential or Functional).
        opset: ONNX opset, 13–18.

    Returns:
        The ONNX model with a dynamic batch dimension, input named ``input``.

    Raises:
        AnanError: TensorFlow missing, unreadable file, several inputs, export failure.
    """
    check_opset("opset", opset)
    with quiet_native_logs():
        return _export(Path(path), opset)


def _export(path: Path, opset: int) -> onnx.ModelProto:
    tf, keras, _ = _import_tensorflow()
    model = _load(keras, path)
    frozen = _frozen(_traced(tf, model, _image_shape(model, path)), path)
    kernels, convs = _conv_kernels(keras, model), KerasConvs.read(keras, model)
    name = str(model.name)  # keras.applications' names tell their preprocess_input mode
    del model  # the frozen graph holds the weights now; nothing below needs the model
    try:
        proto = frozen_to_onnx(tf, frozen, opset=opset, custom_op_handlers={"Erfc": (_erfc, [])})
    except Exception as exc:
        raise AnanError(f"tf2onnx could not export {path} ({first_line(exc)})") from None
    restore_folded_kernels(proto, kernels)
    write_metadata(proto, {**convs.metadata(proto), "keras_name": name})
    return proto


def _image_shape(model, path: Path) -> tuple[int, ...]:
    """The model's one input shape, (batch, height, width, channels); refuses others."""
    if len(model.inputs) != 1:
        names = ", ".join(repr(_input_name(t)) for t in model.inputs[:4])
        raise AnanError(
            f"{path} has {len(model.inputs)} inputs of its own ({names}): ANAN supports CNNs "
            "with one image input; save a model that takes only the image"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise AnanError(
            f"{path} takes input of shape {shape}: ANAN supports 2-D image CNNs (Conv2D on a "
            "4-D batch), not 1-D or 3-D convolution models"
        )
    if any(d is None for d in shape[1:]):
        raise AnanError(
            f"{path} takes input of shape {shape}: ANAN needs a fixed-size image input "
            "(batch, height, width, channels); rebuild the model with a fixed Input shape"
        )
    return shape


def _traced(tf, model, shape: tuple[int, ...]):
    """The model's inference call as a concrete function of one batch-dynamic input."""
    spec = [tf.TensorSpec((None, *shape[1:]), tf.float32, name="input")]

    @tf.function(input_signature=spec)
    def forward(x):
        return model(x, training=False)

    return forward.get_concrete_function()


def _frozen(concrete, path: Path) -> FrozenGraph:
    """The traced model with every captured value frozen into a constant.

    A traced Keras model captures its variables (trainable or not: BatchNormalization's
    moving statistics, any layer state) and also plain tensors such as the ``Normalization``
    layer's mean and variance. tf2onnx's ``from_function`` freezes only the variables and
    turns captured tensors into extra graph inputs, so TensorFlow's own freezing runs on the
    whole function first and tf2onnx gets a graph whose only input is the image.

    Only the ``GraphDef`` is kept: the frozen function itself holds several more copies of
    the weights (its graph, its registered function), freed when it is collected.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    try:
        frozen = convert_variables_to_constants_v2(
            concrete, lower_control_flow=False, aggressive_inlining=True
        )
    except Exception as exc:
        raise AnanError(
            f"TensorFlow could not freeze the weights of {path} ({first_line(exc)}): "
            "save the model with its weights as constants"
        ) from None
    extra = [t.name for t in frozen.inputs if t.name != "input:0"]
    if extra:  # state that TensorFlow cannot freeze (a resource such as a lookup table)
        raise AnanError(
            f"{path} reads state that cannot be frozen into constants ({', '.join(extra[:4])}) "
            "besides its image input 'input': ANAN supports CNNs with one image input; save a "
            "model without such state"
        )
    graph_def = frozen.graph.as_graph_def(add_shapes=True)
    _allow_inlining(graph_def)
    return FrozenGraph(graph_def, [t.name for t in frozen.outputs])


#: attributes that keep TensorFlow's optimiser from inlining a function call
_NO_INLINE = ("_XlaMustCompile", "_XlaCompile", "_noinline")


def _allow_inlining(graph_def) -> None:
    """Lets TensorFlow inline the functions that Keras compiles with XLA.

    Keras 3 runs a grouped ``Conv2D`` (ConvNeXt's depthwise convolutions) in a
    ``tf.function(jit_compile=True)``; TensorFlow's optimiser never inlines such a call, and
    tf2onnx would leave it as an unknown ``StatefulPartitionedCall`` op. Without the XLA
    marks the call is inlined like any other and the convolution exports as a ``Conv``.
    """
    for node in graph_def.node:
        if node.op in ("StatefulPartitionedCall", "PartitionedCall"):
            for key in _NO_INLINE:
                if key in node.attr:
                    del node.attr[key]
    for function in graph_def.library.function:
        for key in _NO_INLINE:
            if key in function.attr:
                del function.attr[key]


def _erfc(ctx, node, name: str, args: list) -> None:
    """tf2onnx handler for TensorFlow's ``Erfc`` (Keras 3's exact GELU): ``1 - Erf(x)``."""
    dtype = numpy_dtype(ctx.get_dtype(node.input[0]))
    erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=name)
    one = ctx.make_const(f"{name}/one", np.array(1, dtype))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def restore_folded_kernels(proto: onnx.ModelProto, kernels: dict[str, np.ndarray]) -> int:
    """Undoes folded per-channel scales: ``Conv(x, s·W) + B`` becomes ``Conv(x, W)·s + B``.

    A Conv whose kernel equals, up to one factor per output channel, the kernel of exactly
    one Keras ``Conv2D`` layer (``kernels``: layer name → O×C×kh×kw) but not the kernel itself
    was folded by TensorFlow. Its kernel is replaced by the layer's, and ``Mul``/``Add``
    nodes after it apply the scale and the old bias, so the model computes the same values
    while the Conv node outputs the layer's own response. Returns the number of Convs restored.
    """
    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    restored = 0
    for original in graph.node:
        node = onnx.NodeProto()
        node.CopyFrom(original)
        nodes.append(node)
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        match = _folded_from(numpy_helper.to_array(inits[node.input[1]]), kernels)
        if match is not None:
            nodes += _unfold(graph, node, *match, inits)
            restored += 1
    if restored:
        del graph.node[:]
        graph.node.extend(nodes)
        _drop_unused_initializers(graph)  # the folded kernels: as large as the restored ones
    return restored


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = _names_read(graph) | {value.name for value in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    if len(kept) < len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def _names_read(graph: onnx.GraphProto) -> set[str]:
    """Every value name a node of ``graph`` reads, subgraphs (If, Loop bodies) included."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            for sub in (
                [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs
            ):
                names |= _names_read(sub)
    return names


def _folded_from(
    folded: np.ndarray, kernels: dict[str, np.ndarray]
) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(layer, kernel, per-channel scale) if ``folded`` is a rescaled layer kernel."""
    matches = []
    for layer, kernel in kernels.items():
        if kernel.shape != folded.shape or np.array_equal(kernel, folded):
            continue
        flat_k = kernel.reshape(len(kernel), -1).astype(np.float64)
        flat_f = folded.reshape(len(folded), -1).astype(np.float64)
        norm = (flat_k**2).sum(axis=1)
        if np.any(norm == 0):
            continue
        scale = (flat_k * flat_f).sum(axis=1) / norm
        residual = np.abs(flat_f - scale[:, None] * flat_k).max()
        if residual <= 1e-5 * max(np.abs(flat_f).max(), 1e-30):
            matches.append((layer, kernel, scale.astype(np.float32)))
    return matches[0] if len(matches) == 1 else None


def _unfold(graph, node, layer: str, kernel, scale, inits) -> list[onnx.NodeProto]:
    """Points ``node`` at ``kernel`` and returns the Mul (and Add) nodes to insert after it."""
    base = f"{layer}/unfolded"
    out = node.output[0]
    channels = (1, len(scale), 1, 1)
    graph.initializer.append(numpy_helper.from_array(kernel, f"{base}/kernel"))
    graph.initializer.append(numpy_helper.from_array(scale.reshape(channels), f"{base}/scale"))
    node.input[1] = f"{base}/kernel"
    node.name = f"{layer}/convolution"
    node.output[0] = f"{base}/conv_out"
    nodes = [make_node("Mul", [node.output[0], f"{base}/scale"], [out], f"{base}/mul")]
    if len(node.input) > 2 and node.input[2]:
        bias = numpy_helper.to_array(inits[node.input[2]]).reshape(channels)
        graph.initializer.append(numpy_helper.from_array(bias, f"{base}/shift"))
        del node.input[2:]
        nodes[0].output[0] = f"{base}/scaled"
        nodes.append(make_node("Add", [f"{base}/scaled", f"{base}/shift"], [out], f"{base}/add"))
    return nodes


def _conv_kernels(keras, model) -> dict[str, np.ndarray]:
    """Kernels of the model's plain ``Conv2D`` layers (nested models included) as OIHW."""
    kernels: dict[str, np.ndarray] = {}
    for layer in _layers(keras, model):
        if type(layer) is keras.layers.Conv2D and layer.get_weights():
            kernel = np.asarray(layer.get_weights()[0], np.float32)  # (kh, kw, C/g, O)
            kernels[layer.name] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    return kernels


def _layers(keras, model) -> list:
    layers = []
    for layer in getattr(model, "layers", []):
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers += _layers(keras, layer)
    return layers


def _input_name(tensor) -> str:
    """A Keras input's name as the model's author gave it (``keras.Input(name=...)``)."""
    history = getattr(tensor, "_keras_history", None)
    layer = getattr(history, "operation", None)
    return str(getattr(layer, "name", None) or getattr(tensor, "name", "?"))


def _load(keras, path: Path):
    """Loads by content: an HDF5 file named ``.keras`` (or a zip named ``.h5``) is fine too."""
    try:
        with _named_by_content(path) as named:
            return keras.models.load_model(named, compile=False)
    except AnanError:
        raise
    except Exception as exc:
        raise AnanError(
            f"{path} is not a loadable Keras model ({first_line(exc)}): check the file"
        ) from None


@contextlib.contextmanager
def _named_by_content(path: Path) -> Iterator[Path]:
    """``path``, or a temporary link to it whose suffix says what the file holds.

    Keras picks the loader by the file name; Keras 2 wrote HDF5 files under any name.
    """
    suffix = ".h5" if model_kind(path) == "h5" else ".keras"
    if path.suffix.lower() in ((".h5", ".hdf5") if suffix == ".h5" else (".keras",)):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="anan-onnx-") as folder:
        link = Path(folder) / f"model{suffix}"
        try:
            link.symlink_to(path.resolve())
        except OSError:
            shutil.copyfile(path, link)
        yield link


def _import_tensorflow():
    """TensorFlow, Keras and tf2onnx; their log levels are the caller's (the CLI quiets
    them: anan_onnx.cli.process)."""
    try:
        import keras
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        raise AnanError(
            f"converting a Keras model needs TensorFlow ({exc.name} is missing): "
            f"{install_hint('keras')}, or pass an .onnx model"
        ) from None
    return tf, keras, tf2onnx


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Silences TensorFlow's C++ start-up chatter (it ignores TF_CPP_MIN_LOG_LEVEL now).

    Python exceptions still propagate; only what is written to fd 2 while the export runs is
    dropped. Scoped and restored, not left to the CLI: the chatter comes from native code
    during the export, which no setting reaches, and the CLI cannot redirect fd 2 around
    the export alone (it runs inside ``convert_file``, ``tune``, ``evaluate``). A library
    caller who wants the lines sets ANAN_ONNX_DEBUG=1.
    """
    if os.environ.get("ANAN_ONNX_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
