"""Which ONNX ``Conv`` node each Keras convolution layer became, recorded at export time.

tf2onnx names nodes after TensorFlow's name scopes (``efficientnetb0_1/stem_conv_1/...``)
and renames or fuses some (a folded BatchNormalization names the Conv after itself), so a
Keras layer name cannot be read back reliably from the ONNX graph. The exporter therefore
matches each ONNX Conv's kernel against the Keras layers' kernels, which survives any
renaming, and stores the result in the base model's metadata:

- ``anan.keras_convs``: ``{ONNX Conv node: Keras layer}`` (``--layer stem_conv`` works);
- ``anan.keras_before``: ``{Keras layer: ["Rescaling 'rescaling'", ...]}`` for the first
  convolution layers, the Keras layers between the model input and them (the
  preprocessing block that ``inspect`` shows next to the chosen Conv).

A kernel matches a layer when it equals the layer's kernel, or equals it up to one factor
per output channel (TensorFlow folds a following BatchNormalization into a bias-free
kernel); a kernel shared by several layers maps to none of them.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["KERAS_BEFORE", "KERAS_CONVS", "KerasConvs"]

KERAS_CONVS = "keras_convs"
KERAS_BEFORE = "keras_before"


@dataclasses.dataclass
class KerasConvs:
    """What the metadata needs from the Keras model: read before the export, so that the
    model can be released while tf2onnx runs.

    Attributes:
        kernels: each convolution layer's kernels as ONNX Conv weights.
        before: the layers between the input and each first convolution layer.
    """

    kernels: dict[str, list[np.ndarray]]
    before: dict[str, list[str]]

    @classmethod
    def read(cls, keras, model) -> KerasConvs:
        kernels = _onnx_kernels(keras, model)
        return cls(kernels, _first_layers_inputs(keras, model, kernels))

    def metadata(self, proto: onnx.ModelProto) -> dict[str, str]:
        """The two metadata values (JSON strings) for ``proto`` exported from the model."""
        convs = _match(proto, self.kernels)
        return {KERAS_CONVS: json.dumps(convs), KERAS_BEFORE: json.dumps(self.before)}


def _conv_layers(keras, model) -> list:
    """Every convolution layer of ``model`` (nested models included), in layer order."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            found += _conv_layers(keras, layer)
        elif _kernels_of(keras, layer):
            found.append(layer)
    return found


def _kernels_of(keras, layer) -> list[np.ndarray]:
    """The layer's kernels as ONNX Conv weights (O × C/group × kh × kw)."""
    layers = keras.layers
    if isinstance(layer, layers.DepthwiseConv2D):  # kernel (kh, kw, C, multiplier)
        return [_depthwise(layer.kernel)]
    if isinstance(layer, layers.SeparableConv2D):
        return [_depthwise(layer.depthwise_kernel), _dense(layer.pointwise_kernel)]
    if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose):
        return [_dense(layer.kernel)]
    return []


def _depthwise(kernel) -> np.ndarray:
    w = np.asarray(kernel, np.float32)
    kh, kw, c, m = w.shape
    return w.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)


def _dense(kernel) -> np.ndarray:
    return np.asarray(kernel, np.float32).transpose(3, 2, 0, 1)  # (kh, kw, C, O) -> OIHW


def _onnx_kernels(keras, model) -> dict[str, list[np.ndarray]]:
    return {layer.name: _kernels_of(keras, layer) for layer in _conv_layers(keras, model)}


def _match(proto: onnx.ModelProto, kernels: dict[str, list[np.ndarray]]) -> dict[str, str]:
    """``{Conv node: layer}`` for the Conv nodes whose kernel belongs to exactly one layer."""
    by_shape: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = defaultdict(list)
    for layer, arrays in kernels.items():
        for array in arrays:
            by_shape[array.shape].append((layer, array))
    inits = {init.name: init for init in proto.graph.initializer}
    found = {}
    for node in proto.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        candidates = by_shape.get(weight.shape, [])
        layers = {layer for layer, kernel in candidates if np.array_equal(kernel, weight)}
        if not layers:
            layers = {layer for layer, kernel in candidates if _rescaled(kernel, weight)}
        if len(layers) == 1:
            found[node.name] = layers.pop()
    return found


def _rescaled(kernel: np.ndarray, weight: np.ndarray) -> bool:
    """Whether ``weight`` is ``kernel`` times one non-zero factor per output channel."""
    k = kernel.reshape(len(kernel), -1).astype(np.float64)
    w = weight.reshape(len(weight), -1).astype(np.float64)
    norm = (k**2).sum(axis=1)
    if np.any(norm == 0):
        return False
    scale = (k * w).sum(axis=1) / norm
    residual = np.abs(w - scale[:, None] * k).max()
    return bool(np.all(scale != 0) and residual <= 1e-5 * max(np.abs(w).max(), 1e-30))


def _first_layers_inputs(
    keras, model, kernels: dict[str, list[np.ndarray]]
) -> dict[str, list[str]]:
    """``{first conv layer: the layers between the input and it}``.

    Walks the conv layers in order and stops at the first that has a conv layer upstream:
    in a functional model's topological layer order the first convolutions come first.
    """
    before: dict[str, list[str]] = {}
    for layer in _conv_layers(keras, model):
        try:
            upstream = keras.Model(model.inputs, layer.input).layers
        except Exception:  # a layer inside a nested model, or a shared layer: no single input
            break
        if any(other.name in kernels for other in upstream):
            break
        before[layer.name] = [
            f"{type(other).__name__} {other.name!r}"
            for other in upstream
            if not isinstance(other, keras.layers.InputLayer)
        ]
    return before
