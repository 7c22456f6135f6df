"""compress --fp16 never clamps: weights float16 holds keep their value, larger ones keep
their node in float32 (issue 23: a 5e4 weight was clamped to 1e4 and flipped predictions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from compress_helpers import PARAMS
from onnx import numpy_helper

from anan_onnx.compress import compress_file
from anan_onnx.compress.fp16 import FLOAT16_MAX, beyond_float16
from anan_onnx.convert.pipeline import convert_file
from anan_onnx.reference.compressed import verify_compressed_models
from anan_onnx.reference.verify import random_inputs
from anan_onnx.runtime.labels import predicted_labels
from anan_onnx.runtime.session import Session
from anan_onnx.testing import build_base_cnn


def _wide_head_model(folder: Path, largest: float) -> Path:
    """The test CNN with its sigmoid head (weights and bias) scaled so that its largest
    weight is ``largest``: the same predictions, far larger logits."""
    base = build_base_cnn(32, 3, (8, 16), dense=16, seed=3)
    inits = {i.name: i for i in base.graph.initializer}
    w = numpy_helper.to_array(inits["output_w"])
    factor = largest / float(np.abs(w).max())
    for name in ("output_w", "output_b"):
        scaled = numpy_helper.to_array(inits[name]) * np.float32(factor)
        inits[name].CopyFrom(numpy_helper.from_array(scaled.astype(np.float32), name))
    onnx.save(base, folder / "wide.onnx")
    convert_file(folder / "wide.onnx", folder / "wide.anan.onnx", PARAMS, layout="NHWC")
    return folder / "wide.anan.onnx"


@pytest.mark.parametrize("largest", [5e4, 2e5])
def test_fp16_keeps_large_weights(largest: float, tmp_path: Path) -> None:
    fp32 = _wide_head_model(tmp_path, largest)
    result = compress_file(fp32, "fp16")
    weights = {i.name: i for i in result.anan.graph.initializer}
    head = numpy_helper.to_array(weights["output_w"]).astype(np.float64)
    # within float16's range: stored in float16, rounded, not clamped to 1e4;
    # beyond it: the node stays float32 with its exact weights
    fits = largest <= FLOAT16_MAX
    stored = onnx.TensorProto.FLOAT16 if fits else onnx.TensorProto.FLOAT
    assert weights["output_w"].data_type == stored
    assert np.abs(head).max() == pytest.approx(largest, rel=1e-3)
    assert (result.wide_nodes != []) == (largest > FLOAT16_MAX)
    x = random_inputs(Session(fp32), 24, seed=3)
    ours, theirs = Session(result.output).predict(x), Session(fp32).predict(x)
    assert (predicted_labels(ours) == predicted_labels(theirs)).all()
    report = verify_compressed_models(result.anan, result.base, x, fp32=fp32)
    assert report.passed, report.summary()


def test_beyond_float16_names_the_nodes_reading_wide_weights() -> None:
    model = build_base_cnn(32, 3, (8, 16), dense=16, seed=3)
    assert beyond_float16(model) == set()
    init = next(i for i in model.graph.initializer if i.name == "dense_w")
    values = numpy_helper.to_array(init).copy()
    values[0, 0] = 7e4
    init.CopyFrom(numpy_helper.from_array(values, "dense_w"))
    readers = {n.name for n in model.graph.node if "dense_w" in n.input}
    assert beyond_float16(model) == readers and readers
