"""Tests of anan_onnx.runtime.npy: reading user-given .npy arrays."""

from __future__ import annotations

import numpy as np
import pytest

from anan_onnx.errors import AnanError
from anan_onnx.runtime.npy import load_npy


def test_load_npy(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(load_npy(tmp_path / "x.npy"), x)


def test_load_npy_errors(tmp_path):
    with pytest.raises(AnanError, match=r"missing\.npy does not exist"):
        load_npy(tmp_path / "missing.npy")
    with pytest.raises(AnanError, match="is a folder"):
        load_npy(tmp_path)
    (tmp_path / "text.npy").write_text("1, 2, 3")
    with pytest.raises(AnanError, match=r"text\.npy is not a \.npy file"):
        load_npy(tmp_path / "text.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AnanError, match="holds Python objects, refused for safety"):
        load_npy(tmp_path / "obj.npy")
    np.savez(tmp_path / "pair.npz", a=np.zeros(2), b=np.ones(2))
    with pytest.raises(AnanError, match=r"is an \.npz archive \(arrays: a, b\)"):
        load_npy(tmp_path / "pair.npz")
    np.save(tmp_path / "full.npy", np.zeros((100, 100), np.float32))
    (tmp_path / "short.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:500])
    with pytest.raises(AnanError, match="damaged .npy file"):
        load_npy(tmp_path / "short.npy")
