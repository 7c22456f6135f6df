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
    with pytest.raises(AnanError, match="is a directory, not a regular file"):
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


def _raw_npy(path, header: str, payload: bytes = b"", version: int = 1) -> str:
    text = header.encode("latin-1")
    size = 4 if version == 1 else 6
    text += b" " * (63 - (6 + 2 + size + len(text)) % 64) + b"\n"
    length = len(text).to_bytes(size - 2, "little")
    path.write_bytes(b"\x93NUMPY" + bytes([version, 0]) + length + text + payload)
    return str(path)


_HEAD = "{'descr': '<f4', 'fortran_order': False, 'shape': "


@pytest.mark.parametrize(
    "header, fragment",
    [
        (_HEAD + "(2, 3", "its header is not a Python literal"),  # numpy: tokenize.TokenError
        (_HEAD + "((2, 3), 4), }", "its shape ((2, 3), 4) is not a tuple of non-negative"),
        (_HEAD + "(-1, 4), }", "is not a tuple of non-negative integers"),
        (_HEAD + "(True, 4), }", "is not a tuple of non-negative integers"),
        (_HEAD + "[2, 4], }", "is not a tuple of non-negative integers"),
        ("{'descr': '<f4', 'shape': (2,), }", "not a dict of descr, fortran_order and shape"),
        ("[1, 2, 3]", "not a dict of descr, fortran_order and shape"),
        ("__import__('os').system('true')", "its header is not a Python literal"),
        ("{'descr': 'zz9', 'fortran_order': False, 'shape': (2,), }", "is not a numpy dtype"),
        ("{'descr': '<f4', 'fortran_order': 3, 'shape': (2,), }", "is not True or False"),
        (_HEAD + "(1000000000000, 3), }", "truncated: its header declares shape"),
        ("(" * 4000 + ")" * 4000, "its header is not a Python literal"),  # deep nesting
    ],
)
def test_malformed_headers_name_the_cause(tmp_path, header, fragment):
    path = _raw_npy(tmp_path / "bad.npy", header, b"\x00" * 16)
    with pytest.raises(AnanError, match="bad.npy is a damaged .npy file") as info:
        load_npy(path)
    assert fragment in str(info.value) and "Python objects" not in str(info.value)


def test_header_length_and_records_are_checked(tmp_path):
    long = tmp_path / "long.npy"
    long.write_bytes(b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little") + b"{")
    with pytest.raises(AnanError, match="header claims 2,147,483,648 bytes"):
        load_npy(long)
    records = _raw_npy(
        tmp_path / "rec.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }"
    )
    with pytest.raises(AnanError, match="holds records"):
        load_npy(records)


def test_valid_files_load_memory_mapped_and_exact(tmp_path):
    rng = np.random.default_rng(0)
    for array in (
        rng.random((3, 2, 5), dtype=np.float32),
        np.asfortranarray(rng.random((4, 3))),
        rng.random((2, 3)).astype(">f8"),
        np.zeros((0, 3), np.float32),
    ):
        np.save(tmp_path / "a.npy", array)
        got = load_npy(tmp_path / "a.npy")
        assert got.dtype == array.dtype and got.shape == array.shape
        np.testing.assert_array_equal(got, array)
    np.save(tmp_path / "v3.npy", np.ones(3, np.float32))
    data = bytearray((tmp_path / "v3.npy").read_bytes())
    header = bytes(data[10:]).split(b"\n")[0].decode()
    v3 = _raw_npy(tmp_path / "v3b.npy", header.strip(), np.ones(3, np.float32).tobytes(), 3)
    np.testing.assert_array_equal(load_npy(v3), np.ones(3, np.float32))
