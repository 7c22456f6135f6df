"""Tests of anan_onnx.json_clean: one rule for every JSON anan-onnx writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from anan_onnx.json_clean import clean, dumps, to_bytes


def test_non_finite_numbers_become_null_everywhere():
    value = {
        "nan": math.nan,
        "inf": [math.inf, -math.inf, 1.5],
        "numpy": np.array([np.nan, 2.0], np.float32),
        "scalar": np.float64("inf"),
        "nested": ({"x": np.float32("nan")},),
    }
    assert clean(value) == {
        "nan": None,
        "inf": [None, None, 1.5],
        "numpy": [None, 2.0],
        "scalar": None,
        "nested": [{"x": None}],
    }
    text = dumps(value)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["inf"] == [None, None, 1.5]


def test_numpy_paths_and_keys_become_json_types():
    out = clean({1: np.int64(3), "p": Path("a/b.onnx"), "b": np.bool_(True)})
    assert out == {"1": 3, "p": "a/b.onnx", "b": True}
    assert type(out["1"]) is int and type(out["b"]) is bool
    assert to_bytes({"k": 4}) == b'{\n  "k": 4\n}\n'


def test_other_objects_are_refused():
    with pytest.raises(TypeError):
        dumps({"x": object()})
