"""Tests of anan_onnx.runtime.batched: batched prediction equals one run of the batch."""

from __future__ import annotations

import numpy as np
import pytest

from anan_onnx import AnanError, AnanParams, Session, convert_model
from anan_onnx.runtime.batched import predict_batched
from anan_onnx.testing import VARIANTS, build_cnn, random_batch


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_batches_equal_one_run(batch_size):
    anan = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=3, mu=1, a=1.5)).anan
    x = random_batch(VARIANTS["plain"], 7)
    expected = Session(anan).predict(x)
    got = predict_batched(anan, x, batch_size=batch_size)
    np.testing.assert_array_equal(got, expected)
    base = predict_batched(build_cnn(VARIANTS["plain"]), x, batch_size=batch_size)
    assert not np.allclose(got, base)  # the ANAN model is run, not its base


def test_bad_batches_are_refused():
    model = build_cnn(VARIANTS["plain"])
    with pytest.raises(AnanError, match="batch_size must be a positive integer"):
        predict_batched(model, random_batch(VARIANTS["plain"], 2), batch_size=0)
    x = random_batch(VARIANTS["plain"], 2)
    x[1, 0, 0, 0] = np.nan
    with pytest.raises(AnanError, match="images has 1 NaN"):
        predict_batched(model, x)
