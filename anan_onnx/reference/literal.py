"""The literal ANAN procedure of the spec, one image at a time: the oracle for the graph.

For each image: back up ``W0``; k times run the layer with the current weights, compute the
kernel activities, update the counters and scale the weights in numpy; predict with the
final weights; restore. It deliberately shares no code with the graph rewrite: it edits the
base model's protobuf so that the target Conv reads its weights from an input, and runs
it with onnxruntime (k + 1 runs per image).

The loop watches the target Conv in canonical form (:mod:`anan_onnx.canonical`: a bias
``Add``, ``BatchNormalization`` or scale-shift after it folded in, layout ``Transpose`` nodes
looked through), which is the definition of the kernel response; on a base model written by
``convert`` it is already canonical and nothing changes.

Example:
    >>> from anan_onnx.testing import VARIANTS, build_cnn, random_batch
    >>> base = build_cnn(VARIANTS["plain"])          # or onnx.load("out/model.base.onnx")
    >>> ref = LiteralReference(base, "conv1", AnanParams(k=2, a=1.5))
    >>> result = ref.run(random_batch(VARIANTS["plain"], 3))
    >>> result.outputs[0].shape, result.weights.shape[0]
    ((3, 2), 3)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from anan_onnx._public import public
from anan_onnx.activations import ACTIVATIONS, node_activation
from anan_onnx.canonical import canonical_model
from anan_onnx.choices import Counter, Reduce, Rule, Signal
from anan_onnx.errors import AnanError
from anan_onnx.onnx_proto import constant_array
from anan_onnx.params import AnanParams

#: an activation function on numpy arrays
Activation = Callable[[np.ndarray], np.ndarray]

__all__ = ["LiteralReference", "ReferenceResult", "decision_margin"]

_WEIGHT_INPUT = "anan_reference_weight"
#: an activity within this fraction of its map's scale may flip sign between float paths
NEAR_TIE = 1e-5


@public
@dataclasses.dataclass
class ReferenceResult:
    """Outputs of the literal loop for a batch.

    Attributes:
        outputs: the model's outputs, stacked over the batch.
        near_tie: per image, whether some kernel activity was within rounding of 0.
        weights: the final modulated weights of each image (N × O × C × kh × kw).
        margin: per image, the decision margin (:func:`decision_margin`: the smallest move
            of a pre-activation map, relative to its largest value, that can flip some u_j,
            over the k steps), or ``None`` when not asked for.
    """

    outputs: list[np.ndarray]
    near_tie: np.ndarray
    weights: np.ndarray
    margin: np.ndarray | None = None


@public
class LiteralReference:
    """Runs the spec's per-image loop on a base ONNX model.

    With several layers the loop modulates them one after the other, in the order given
    (the model's topological order): layer 1's k presentations run with every other layer
    at W0; layer 2's k presentations then run with layer 1 at its final weights, and so on;
    the prediction uses every layer's final weights (docs/algorithm.md, "Several layers").

    Args:
        base: the base model (not modified).
        layer: name of the target Conv node, or the names of several, in order.
        params: ANAN parameters (shared by every layer).
        providers: onnxruntime execution providers.
    """

    def __init__(
        self,
        base: onnx.ModelProto,
        layer: str | Sequence[str],
        params: AnanParams,
        providers: list[str] | None = None,
    ) -> None:
        self.params = params
        names = [layer] if isinstance(layer, str) else list(layer)
        model = copy.deepcopy(base)
        for name in names:
            model = canonical_model(model, name)[0]
        self.layers = [_Layer(model, name, i, params.signal) for i, name in enumerate(names)]
        self.map_names = [n for lay in self.layers for n in lay.map_names]
        model.graph.output.extend(
            helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in self.map_names
        )
        self.output_names = [o.name for o in base.graph.output]
        initializers = {i.name for i in model.graph.initializer}
        self.input_name = next(
            i.name
            for i in model.graph.input
            if i.name not in initializers and i.name not in {lay.input for lay in self.layers}
        )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=providers or ["CPUExecutionProvider"]
        )

    @property
    def w0(self) -> np.ndarray:
        """The first target's trained kernel."""
        return self.layers[0].w0

    def run(self, batch: np.ndarray, margin: bool = False) -> ReferenceResult:
        """The literal loop over every image of ``batch`` (model layout, float32);
        ``margin``: also each image's decision margin (a bisection per step: slower)."""
        outputs, ties, weights, margins = [], [], [], []
        for image in batch:
            out, tie, w, m = self._one_image(image[None], margin)
            outputs.append(out)
            ties.append(tie)
            weights.append(w)
            margins.append(m)
        stacked = [np.concatenate([o[i] for o in outputs]) for i in range(len(self.output_names))]
        found = np.array(margins) if margin else None
        return ReferenceResult(stacked, np.array(ties), np.stack(weights), found)

    def _one_image(
        self, x: np.ndarray, margin: bool = False
    ) -> tuple[list[np.ndarray], bool, np.ndarray, float]:
        """The loop for one image; the weights returned are the first layer's."""
        current = {lay.input: lay.w0.copy() for lay in self.layers}  # 1. back up every W0
        near_tie, smallest = False, 1.0
        for lay in self.layers:  # one layer after the other, the earlier ones modulated
            tie, found = self._modulate(x, lay, current, margin)
            near_tie, smallest = near_tie or tie, min(smallest, found)
        # 3. predict with the modulated weights; 4. W0 is restored by discarding ``current``
        out = self.session.run(self.output_names, {self.input_name: x, **current})
        return out, near_tie, current[self.layers[0].input], smallest

    def _modulate(
        self, x: np.ndarray, lay: _Layer, current: dict[str, np.ndarray], margin: bool
    ) -> tuple[bool, float]:
        """The k presentations of ``x`` for one layer: updates ``current[lay.input]``;
        returns whether some step was a near-tie, and the smallest margin (1 if not asked)."""
        p = self.params
        w = current[lay.input]  # modified in place
        r = np.zeros(w.shape[0])
        near_tie, smallest = False, 1.0
        for _ in range(p.k):  # 2. present the image k times
            maps = self.session.run(lay.map_names, {self.input_name: x, **current})
            y = maps[-1][0]  # the signal: pre-activation, or the layer's activation of it
            s = _activity(y, p.reduce)
            near_tie |= _near_tie(maps[0][0], lay.bias, lay.activation, p.reduce)
            if margin:
                found = decision_margin(maps[0][0], lay.bias, lay.activation, p.reduce)
                smallest = min(smallest, found)
            u = np.where(s > 0, 1, -1)  # eq. 1
            if p.counter == Counter.ABSORBING:  # eq. 2
                r = np.where(np.abs(r) == p.mu, r, r + u)
            else:
                r = np.clip(r + u, -p.mu, p.mu)
            for j in range(w.shape[0]):  # eq. 3 and the update, kernel by kernel
                w[j] = _update_kernel(w[j], r[j], p)
        return near_tie, smallest


class _Layer:
    """One target Conv of the reference model: its weights become a graph input."""

    def __init__(self, model: onnx.ModelProto, layer: str, index: int, signal: str) -> None:
        conv = _conv_node(model.graph, layer)
        self.w0 = constant_array(model.graph, conv.input[1])
        has_bias = len(conv.input) > 2 and conv.input[2]
        bias = constant_array(model.graph, conv.input[2]) if has_bias else np.zeros(len(self.w0))
        self.bias = bias.reshape(-1, 1)
        post_name: str | None = None
        self.activation: Activation = _identity
        if signal == Signal.POST:
            act = _activation_node(model, conv)
            post_name, self.activation = act.output[0], node_activation(model.graph, act)
        self.map_names = [n for n in (conv.output[0], post_name) if n]
        # the first keeps the one-layer name: a single-layer reference is as it was
        self.input = _WEIGHT_INPUT if index == 0 else f"{_WEIGHT_INPUT}_{index + 1}"
        conv.input[1] = self.input
        model.graph.input.append(
            helper.make_tensor_value_info(self.input, onnx.TensorProto.FLOAT, self.w0.shape)
        )


def _update_kernel(w: np.ndarray, r: float, p: AnanParams) -> np.ndarray:
    excited, inhibited = r == p.mu, r == -p.mu
    if p.rule == Rule.MULTIPLICATIVE:
        if excited:
            return w * np.float32(p.a)
        if inhibited:
            return w * np.float32(1.0 - p.b)
        return w
    z = p.a if excited else (-p.b if inhibited else p.idle)
    return w + np.abs(w) * np.float32(z)


def _activity(y: np.ndarray, reduce: str) -> np.ndarray:
    """Per-kernel activity s_j of an (O, H, W) map (spec step 2)."""
    flat = y.reshape(y.shape[0], -1).astype(np.float64)
    if reduce == Reduce.MEAN:
        return flat.mean(axis=1)
    if reduce == Reduce.MAX:
        return flat.max(axis=1)
    return (flat > 0).mean(axis=1) - 0.5


def _near_tie(pre: np.ndarray, bias: np.ndarray, activation: Activation, reduce: str) -> bool:
    """Whether moving the pre-activation map by ±1e-5 of its scale can flip some u_j.

    Activations and reductions are monotone, so s(pre - δ) <= s <= s(pre + δ): a kernel is
    a near-tie exactly when those two bounds fall on different sides of 0. Positions that
    equal the bias exactly saw only zeros (padding) and are exact in any float path.
    """
    flat, scale = _scaled(pre, bias)
    return bool(np.any(_straddles(flat, NEAR_TIE * scale, activation, reduce)))


def decision_margin(
    pre: np.ndarray, bias: np.ndarray, activation: Activation, reduce: str
) -> float:
    """The smallest relative move δ of the pre-activation map (each position by δ times
    its kernel's largest |value|) that can flip some u_j: a kernel flips at δ exactly when
    the bounds of :func:`_near_tie` straddle 0 there (a near-tie is a margin <= NEAR_TIE).

    Found by bisection on log δ over [1e-12, 1], per kernel at once; 1.0 where no move up
    to the map's own scale flips a kernel. A precision whose relative rounding reaches the
    margin may change a decision (docs/engines.md: bf16 ~2^-8, fp16 ~2^-11).
    """
    flat, scale = _scaled(pre, bias)
    low, high = np.full(len(flat), -12.0), np.zeros(len(flat))  # log10 δ brackets

    def flips(log_delta: np.ndarray) -> np.ndarray:
        return _straddles(flat, 10.0 ** log_delta[:, None] * scale, activation, reduce)

    never = ~flips(high)
    for _ in range(30):
        middle = (low + high) / 2
        flipped = flips(middle)
        high, low = np.where(flipped, middle, high), np.where(flipped, low, middle)
    margins = np.where(never, 1.0, 10.0**high)
    return float(margins.min()) if len(margins) else 1.0


def _scaled(pre: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (O, positions) map in float64 and each position's unit of move: its kernel's
    largest |value|, 0 where the position equals the bias (it saw only padding: exact)."""
    flat = pre.reshape(pre.shape[0], -1).astype(np.float64)
    return flat, np.abs(flat).max(axis=1, keepdims=True) * (flat != bias)


def _straddles(
    flat: np.ndarray, delta: np.ndarray, activation: Activation, reduce: str
) -> np.ndarray:
    """Per kernel: whether s(map - δ) and s(map + δ) fall on different sides of 0."""
    low = _activity(activation(flat - delta), reduce)
    high = _activity(activation(flat + delta), reduce)
    return (low > 0) != (high > 0)


def _identity(y: np.ndarray) -> np.ndarray:
    return y


def _conv_node(graph: onnx.GraphProto, layer: str) -> onnx.NodeProto:
    for node in graph.node:
        if node.name == layer and node.op_type == "Conv":
            return node
    raise AnanError(
        f"the base model has no Conv node named {layer!r}: pass the matching base model"
    )


def _activation_node(model: onnx.ModelProto, conv: onnx.NodeProto) -> onnx.NodeProto:
    users = [n for n in model.graph.node if conv.output[0] in n.input]
    if len(users) == 1 and users[0].op_type in ACTIVATIONS:
        return users[0]
    raise AnanError("signal=post needs an activation right after the target Conv: use --signal pre")
