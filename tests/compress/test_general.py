"""compress on other CNN shapes: NCHW input, no bias, no pool, MaxPool straight after the Conv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from compress_helpers import PARAMS, make_images

from anan_onnx.compress import compress_file
from anan_onnx.convert.pipeline import convert_file
from anan_onnx.reference.compressed import verify_compressed_models
from anan_onnx.runtime.session import Session
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

CASES = {
    "nchw_no_pool": (VARIANTS["plain"], None),
    "no_bias_maxpool": (VARIANTS["no_bias"], "max"),
    "stride2_pool_no_act": (VARIANTS["stride2"], "max_no_act"),
}


@pytest.mark.parametrize("mode", ["int8", "fp16"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_compressed_matches_literal_loop(case: str, mode: str, tmp_path: Path) -> None:
    variant, pool = CASES[case]
    onnx.save(build_cnn(variant, pool=pool, seed=2), tmp_path / "m.onnx")
    convert_file(tmp_path / "m.onnx", tmp_path / "m.anan.onnx", PARAMS, layout="NCHW")
    make_images(tmp_path / "data", 12, variant.size[0])
    result = compress_file(
        tmp_path / "m.anan.onnx",
        mode,
        calibration=[tmp_path / "data"] if mode == "int8" else (),
        calibration_size=12,
    )
    x = random_batch(variant, 16, seed=4)
    report = verify_compressed_models(result.anan, result.base, x)
    assert report.passed, report.summary()
    assert report.handover_diff <= 1e-5
    ours = Session(result.output).predict(x)
    assert np.abs(ours - Session(result.base_output).predict(x)).max() > 1e-4
