"""verify refuses an ANAN model and a base compressed otherwise (reference/pairing.py)."""

from __future__ import annotations

import pytest

from anan_onnx import AnanError, AnanParams, convert_model, verify_models
from anan_onnx.metadata import write_metadata
from anan_onnx.reference.pairing import check_compressed_pair
from anan_onnx.testing import VARIANTS, build_cnn


def test_same_compression_passes_and_a_mismatch_is_refused():
    check_compressed_pair({}, {})
    check_compressed_pair({"compression": "int8"}, {"compression": "int8"})
    with pytest.raises(AnanError, match="ANAN model is int8 but the base model is fp32"):
        check_compressed_pair({"compression": "int8"}, {})
    with pytest.raises(AnanError, match="ANAN model is fp32 but the base model is fp16"):
        check_compressed_pair({}, {"compression": "fp16"})


def test_verify_models_refuses_a_compressed_base_for_an_fp32_model():
    result = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=2, a=1.5))
    write_metadata(result.base, {"compression": "int8"})
    with pytest.raises(AnanError, match="pass the base written with it"):
        verify_models(result.anan, result.base, n=2)
