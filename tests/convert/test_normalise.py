"""Tests of anan_onnx.convert.normalise: the base model as the rewrite (and the fast grid)
sees it."""

from __future__ import annotations

import onnx_ir as ir
import pytest

from anan_onnx import AnanError, AnanParams, convert_model
from anan_onnx.convert.normalise import normalise_base
from anan_onnx.testing import VARIANTS, build_cnn


@pytest.mark.parametrize("signal", ["pre", "post"])
def test_normalised_base_is_the_conversions_base(signal):
    base = build_cnn(VARIANTS["groups"], activation="Elu")
    params = AnanParams(signal=signal)
    model, target = normalise_base(base, params)
    conversion = convert_model(base, params)
    assert ir.to_proto(model).SerializeToString() == conversion.base.SerializeToString()
    assert target.name == conversion.target_layer
    assert target.activation is not None and target.activation.op_type == "Elu"


def test_normalise_refuses_what_convert_refuses():
    base = build_cnn(VARIANTS["plain"], activation="Relu")
    anan = convert_model(base, AnanParams()).anan
    with pytest.raises(AnanError, match="already an ANAN model"):
        normalise_base(anan, AnanParams())
    with pytest.raises(AnanError, match="no Conv node named 'nope'"):
        normalise_base(base, AnanParams(), layer="nope")
