"""The tail bound of a compressed model: one output quantisation step per rounding layer.

Issue 23: verify failed a correct INT8 model whose output differed from the literal loop on
its compressed base by one 8-bit output step (0.00392 > the fixed 1e-3 bound).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from anan_onnx.reference.compressed import (
    CompressedVerifyReport,
    handover_tensors,
    tail_bound,
)
from anan_onnx.reference.verify import VerifyReport


def _scale_of_output_dq(model: onnx.ModelProto) -> float:
    dq = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    assert dq.op_type == "DequantizeLinear"
    scale = next(i for i in model.graph.initializer if i.name == dq.input[1])
    return float(numpy_helper.to_array(scale))


def test_int8_bound_is_output_steps_per_rounding_layer(int8_model) -> None:
    base = int8_model.base
    bound = tail_bound(base, handover_tensors(int8_model.anan), [], 1e-5)
    # the test CNN's tail requantizes after the hand-over (p1), conv2 (r2), dense,
    # the logit and the sigmoid: five scales (pool, transpose, flatten reuse r2's)
    assert (bound.kind, bound.steps) == ("int8", 5)
    assert bound.step == _scale_of_output_dq(base)
    assert bound.bound == 5 * bound.step + 1e-5


def test_fp16_bound_is_float16_spacing_per_layer(fp16_model) -> None:
    names = handover_tensors(fp16_model.anan)
    bound = tail_bound(fp16_model.base, names, [np.array([[0.3], [0.7]])], 1e-5)
    # conv2, dense and the head round their sums in float16, plus the output's own rounding
    assert (bound.kind, bound.steps) == ("fp16", 4)
    assert bound.step == float(np.spacing(np.float16(1.0)))  # outputs below 1: the unit's
    wide = tail_bound(fp16_model.base, names, [np.array([[300.0]])], 1e-5)
    assert wide.step == float(np.spacing(np.float16(300.0)))


def test_one_output_step_passes_and_more_than_the_bound_fails(int8_model) -> None:
    bound = tail_bound(int8_model.base, handover_tensors(int8_model.anan), [], 1e-5)

    def report(diff: float) -> CompressedVerifyReport:
        outputs = VerifyReport(140, 0, 140, diff, bound.bound)
        return CompressedVerifyReport(outputs, handover_diff=5e-7, tail=bound)

    assert report(bound.step).passed  # one 8-bit step: rounding, not a fault
    assert report(bound.bound).passed
    assert not report(bound.bound * 1.5).passed
