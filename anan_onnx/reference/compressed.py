"""``verify`` for compressed models: a decision procedure, exact where it can be, bounded
where rounding is the design, and checked against the FP32 model it came from.

A compressed ANAN model (``anan-onnx compress``) passes :func:`verify_compressed_models` only
if all three hold:

1. **hand-over, exact**: the FP32 tensors the astrocyte subgraph hands to the compressed
   tail equal those of the literal loop run on the *compressed base* (written beside it by
   ``compress``: the FP32 base compressed with the same ranges and exclusions) to 1e-5
   (relative to the tensor's scale). A tampered astrocyte constant fails here.
2. **outputs, within the tail bound** (:class:`TailBound`): both models share one
   compressed tail, but it rounds. A 1e-7 difference at the hand-over can land on the other
   side of one rounding step at each rounding layer after it, so the outputs may differ by
   a few steps of the *output* quantisation (INT8: the scale of the DequantizeLinear that
   produces the output; FP16: the float16 spacing at the output's magnitude, at least that
   of 1.0), one step per rounding layer of the tail. Every prediction must agree up to that
   bound. A tail that differs (negated, scaled or clamped weights) fails here.
3. **agreement with the FP32 model** (:mod:`anan_onnx.runtime.agreement`): at least
   ``min_agreement`` (default 99 %) of the inputs get the class of the FP32 ANAN model it
   was compressed from. A compression that damaged both models alike (a clamped weight, a
   negated layer in model and base) passes 1 and 2 and fails here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from anan_onnx._public import public
from anan_onnx.errors import AnanError
from anan_onnx.model_io import recorded_file
from anan_onnx.onnx_proto import GraphConstants
from anan_onnx.params import AnanParams
from anan_onnx.reference.literal import LiteralReference
from anan_onnx.reference.verify import VerifyReport, summary_number, target_layer, verify_models
from anan_onnx.runtime.agreement import MIN_AGREEMENT, Fp32Agreement, fp32_agreement
from anan_onnx.runtime.inputs import check_batch
from anan_onnx.runtime.labels import TOLERANCE
from anan_onnx.runtime.session import Session, providers_for

#: the astrocyte subgraph's node names start with this (anan_onnx.rewrite names them)
ANAN_PREFIX = "anan/"
#: layers whose accumulation a float16 tail rounds (one output step each, at most)
_FP16_ROUNDING_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}

__all__ = [
    "CompressedVerifyReport",
    "Fp32Agreement",
    "TailBound",
    "fp32_agreement",
    "fp32_model_path",
    "handover_tensors",
    "tail_bound",
    "verify_compressed_models",
]


def fp32_model_path(model: Path, metadata: dict[str, str], given: Path | None) -> Path:
    """The FP32 ANAN model: ``given``, else the ``fp32_model`` recorded beside ``model``."""
    path = given or recorded_file(model, metadata, "fp32_model", "--fp32")
    if not path.is_file():
        raise AnanError(f"FP32 model {path} not found: pass --fp32 with the FP32 .anan.onnx")
    return path


@dataclasses.dataclass(frozen=True)
class TailBound:
    """The bound on |ANAN - literal| at the outputs of a compressed model.

    Attributes:
        kind: ``"int8"``, ``"fp16"`` or ``"fp32"`` (no rounding tail: the bound is the
            tolerance).
        step: one output quantisation step.
        steps: rounding layers after the hand-over (each may round a sub-step difference
            to a whole step; see the module docstring).
        tolerance: the float32 tolerance added on top.
    """

    kind: str
    step: float
    steps: int
    tolerance: float = TOLERANCE

    @property
    def bound(self) -> float:
        return self.steps * self.step + self.tolerance

    def describe(self) -> str:
        if self.kind == "fp32":
            return f"tail bound {self.bound:.3g}"
        return (
            f"tail bound {self.bound:.3g} = {self.steps} rounding layer(s) x {self.kind} "
            f"output step {self.step:.3g}"
        )


def tail_bound(
    base: onnx.ModelProto, handover: list[str], outputs: list[np.ndarray], tolerance: float
) -> TailBound:
    """The :class:`TailBound` of ``base``'s tail (downstream of the ``handover`` tensors).

    Read from the compressed *base*, the reference side, so that a tampered scale in the
    ANAN model cannot widen its own bound. ``outputs`` are the reference's outputs (their
    magnitude sets the float16 step).
    """
    tail = _downstream(base.graph, set(handover))
    scales = GraphConstants(base.graph)  # read by name: only the scales looked up convert
    activation_q = [n for n in tail if n.op_type == "QuantizeLinear" and n.input[0] not in scales]
    if activation_q:
        step = max(_output_dq_scale(base.graph, o.name, scales) for o in base.graph.output)
        return TailBound("int8", step, len({n.input[1] for n in activation_q}), tolerance)
    if _has_float16(base.graph, tail):
        magnitude = max([1.0] + [float(np.abs(o).max()) for o in outputs if o.size])
        step = float(np.spacing(np.float16(min(magnitude, 65504.0))))
        steps = 1 + sum(n.op_type in _FP16_ROUNDING_OPS for n in tail)
        return TailBound("fp16", step, steps, tolerance)
    return TailBound("fp32", 0.0, 0, tolerance)


def _downstream(graph: onnx.GraphProto, tensors: set[str]) -> list[onnx.NodeProto]:
    """Nodes that (transitively) read any of ``tensors``, in graph order."""
    reached, found = set(tensors), []
    for node in graph.node:  # ONNX graphs are topologically sorted
        if reached & set(node.input):
            found.append(node)
            reached |= set(node.output)
    return found


def _output_dq_scale(graph: onnx.GraphProto, output: str, values: GraphConstants) -> float:
    """The scale of the DequantizeLinear nearest upstream of ``output`` (its data path)."""
    producer = {t: n for n in graph.node for t in n.output}
    node = producer.get(output)
    while node is not None and node.op_type != "DequantizeLinear":
        node = producer.get(node.input[0]) if node.input else None
    if node is None or node.input[1] not in values:
        raise AnanError(
            f"the compressed base's output {output!r} has no DequantizeLinear upstream: "
            "pass the base written by anan-onnx compress"
        )
    return float(np.abs(values[node.input[1]].astype(np.float64)).max())


def _has_float16(graph: onnx.GraphProto, tail: list[onnx.NodeProto]) -> bool:
    f16 = onnx.TensorProto.FLOAT16
    reads = {t for n in tail for t in n.input}
    weights = any(i.data_type == f16 and i.name in reads for i in graph.initializer)
    casts = any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in n.attribute)
        for n in graph.node
    )
    return weights or casts


@public
@dataclasses.dataclass
class CompressedVerifyReport:
    """``verify`` of a compressed model: the three checks of the module docstring.

    Attributes:
        outputs: the end-to-end comparison with the literal loop on the compressed base
            (:class:`VerifyReport`; its tolerance is the tail bound).
        handover_diff: max |ANAN - literal| of the FP32 tensors the astrocyte subgraph hands
            to the compressed tail, relative to the tensor's largest magnitude where that
            exceeds 1: the exact part.
        tail: the bound on ``outputs.max_abs_diff`` and how it was derived.
        fp32: agreement with the FP32 ANAN model (``None``: not measured, not checked).
        min_agreement: the share of ``fp32`` that must agree.
        fp32_not_measured: why ``fp32`` is ``None`` (said in the summary).
    """

    outputs: VerifyReport
    handover_diff: float
    tail: TailBound
    fp32: Fp32Agreement | None = None
    min_agreement: float = MIN_AGREEMENT
    fp32_not_measured: str = "no FP32 model given"

    @property
    def handover_tolerance(self) -> float:
        return self.tail.tolerance

    @property
    def passed(self) -> bool:
        o = self.outputs
        return (
            o.compared > 0
            and o.agreeing == o.compared
            and o.unusable == 0
            and self.handover_diff <= self.handover_tolerance
            and o.max_abs_diff <= self.tail.bound
            and (self.fp32 is None or self.fp32.meets(self.min_agreement))
        )

    def summary(self) -> str:
        o = self.outputs
        verdict = "PASS" if self.passed else "FAIL"
        handover, diff = summary_number(self.handover_diff), summary_number(o.max_abs_diff)
        fp32 = (
            self.fp32.summary(self.min_agreement)
            if self.fp32 is not None
            else f"vs FP32: not measured ({self.fp32_not_measured})"
        )
        return (
            f"{verdict}: hand-over to the compressed tail max diff {handover} "
            f"(scaled, tolerance {self.handover_tolerance:g}); outputs vs the literal loop on "
            f"the compressed base: {o.agreeing}/{o.compared} predictions agree, max abs diff "
            f"{diff} ({self.tail.describe()}); {fp32}; "
            f"{o.near_ties} near-tie input(s) skipped of {o.images}"
        )

    def as_dict(self) -> dict[str, object]:
        fp32 = None
        if self.fp32 is not None:
            fp32 = dict(
                dataclasses.asdict(self.fp32),
                agreement=self.fp32.agreement,
                p_value=self.fp32.p_value(self.min_agreement),
            )
        return dict(
            self.outputs.as_dict(),
            handover_diff=self.handover_diff,
            handover_tolerance=self.handover_tolerance,
            tail_bound=self.tail.bound,
            tail=dataclasses.asdict(self.tail),
            fp32=fp32,
            fp32_not_measured=None if self.fp32 is not None else self.fp32_not_measured,
            min_agreement=self.min_agreement,
            passed=self.passed,
            summary=self.summary(),
        )


@public
def verify_compressed_models(
    anan: onnx.ModelProto,
    base: onnx.ModelProto,
    inputs: np.ndarray | Iterable[np.ndarray],
    *,
    fp32: str | Path | onnx.ModelProto | None = None,
    fp32_not_measured: str = "no FP32 model given",
    min_agreement: float = MIN_AGREEMENT,
    tolerance: float = TOLERANCE,
    provider: str = "cpu",
    batch_size: int | None = None,
) -> CompressedVerifyReport:
    """The compressed ANAN model against the literal loop on its compressed base, and
    (given ``fp32``, the FP32 ANAN model) against the FP32 model's predictions.

    The astrocytes are held exact where they hand over (the FP32 output of the ``anan/*``
    subgraph against the literal loop's modulated layer, same tensor in the compressed
    base), the end-to-end outputs to the tail bound with every prediction equal, and the
    FP32 agreement to ``min_agreement``.

    ``inputs``: a batch in the model's layout, or an iterable of batches (``.npy`` files,
    memory-mapped); each is checked as ``predict`` checks it (float pixels, the model's
    shape, finite values) and run in chunks of ``batch_size`` (default: the session's),
    so memory stays bounded by one chunk. ``fp32_not_measured``: why, without ``fp32``,
    the agreement is not measured.
    """
    names = _checked_handover(anan, base)
    session = Session(anan, provider=provider)
    params: AnanParams = session.params  # type: ignore[assignment]
    reference = LiteralReference(
        _with_outputs(base, names),
        target_layer(session.metadata),
        params,
        providers=providers_for(provider),
    )
    probe = Session(_with_outputs(anan, names), provider=provider)
    fp32_session = Session(fp32, provider=provider) if fp32 is not None else None
    size = batch_size or session.default_batch_size()
    shape = (None, *session.input_shape[1:])
    batches = [inputs] if isinstance(inputs, np.ndarray) else inputs
    report: CompressedVerifyReport | None = None
    for i, batch in enumerate(batches):
        for start in range(0, len(batch), size):
            x = check_batch(batch[start : start + size], shape, name=f"input batch {i + 1}")
            part = _verify_chunk(anan, base, x, names, reference, probe, tolerance, provider)
            if fp32_session is not None:
                part.fp32 = fp32_agreement(session, fp32_session, x)
            report = part if report is None else _merged(report, part)
    if report is None:
        raise AnanError("no inputs to verify: pass image files or .npy batches")
    report.min_agreement, report.fp32_not_measured = min_agreement, fp32_not_measured
    return report


def _checked_handover(anan: onnx.ModelProto, base: onnx.ModelProto) -> list[str]:
    """The hand-over tensors, every one of which the base must produce (one missing would
    leave that part of the hand-over unchecked)."""
    names = handover_tensors(anan)
    produced = {t for n in base.graph.node for t in n.output}
    missing = [t for t in names if t not in produced]
    if not names or missing:
        which = f" ({', '.join(missing[:3])})" if missing else ""
        raise AnanError(
            f"the base model does not produce the tensors the astrocyte subgraph hands "
            f"on{which}: pass the base written with the compressed model"
        )
    return names


def _verify_chunk(
    anan: onnx.ModelProto,
    base: onnx.ModelProto,
    x: np.ndarray,
    names: list[str],
    reference: LiteralReference,
    probe: Session,
    tolerance: float,
    provider: str,
) -> CompressedVerifyReport:
    """The three checks' parts on one chunk of checked inputs (FP32 agreement aside)."""
    result = reference.run(x)
    n_out = len(base.graph.output)
    bound = tail_bound(base, names, result.outputs[:n_out], tolerance)
    outputs = verify_models(anan, base, inputs=x, tolerance=bound.bound, provider=provider)
    ours = probe.run(x)[len(anan.graph.output) :]
    keep = ~result.near_tie
    expected = result.outputs[n_out:]
    diffs = [_scaled_diff(o[keep], e[keep]) for o, e in zip(ours, expected, strict=True)]
    return CompressedVerifyReport(outputs, max(diffs) if keep.any() else float("nan"), bound)


def _merged(a: CompressedVerifyReport, b: CompressedVerifyReport) -> CompressedVerifyReport:
    """Two chunks' reports as one: counts added, differences and bounds their largest (a
    float16 tail's bound grows with the outputs' magnitude, chunk by chunk)."""
    diffs = [d for d in (a.handover_diff, b.handover_diff) if not np.isnan(d)]
    fp32 = a.fp32.merged(b.fp32) if a.fp32 is not None and b.fp32 is not None else None
    return CompressedVerifyReport(
        a.outputs.merged(b.outputs),
        max(diffs) if diffs else float("nan"),
        max(a.tail, b.tail, key=lambda t: t.bound),
        fp32,
    )


def _scaled_diff(ours: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference, relative to the tensor's largest magnitude when that exceeds 1:
    the hand-over maps are pre-pool activations (tens or hundreds), not probabilities."""
    scale = max(1.0, float(np.abs(expected).max()))
    return float(np.abs(ours.astype(np.float64) - expected).max()) / scale


def handover_tensors(model: onnx.ModelProto) -> list[str]:
    """Tensors an ``anan/*`` node produces and a node outside the subgraph reads."""
    inside = [n for n in model.graph.node if n.name.startswith(ANAN_PREFIX)]
    read = {t for n in model.graph.node if not n.name.startswith(ANAN_PREFIX) for t in n.input}
    return sorted({t for n in inside for t in n.output if t in read})


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    copy.graph.output.extend(
        helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
    )
    return copy
