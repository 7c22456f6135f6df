"""Tests of anan_onnx.model_io's atomic writes: one file, or several all or nothing."""

from __future__ import annotations

import pytest

from anan_onnx.errors import AnanError
from anan_onnx.model_io import write_all_atomic, write_bytes_atomic


def test_write_bytes_atomic_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    write_bytes_atomic(b"one", path)
    write_bytes_atomic(b"two", path)
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_write_all_atomic_writes_nothing_when_one_cannot_be_staged(tmp_path):
    first = tmp_path / "first.txt"
    first.write_bytes(b"old")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    with pytest.raises(AnanError, match=r"cannot write .*blocker.*: pick a writable output path"):
        write_all_atomic([(b"new", first), (b"x", blocker / "second.txt")])
    assert first.read_bytes() == b"old"  # untouched: staging failed before any rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "first.txt"]


def test_write_all_atomic_stops_at_a_failed_rename_and_cleans_up(tmp_path):
    (tmp_path / "a_dir").mkdir()  # renaming a file onto a folder fails
    second = tmp_path / "second.txt"
    with pytest.raises(AnanError, match=r"cannot write .*a_dir"):
        write_all_atomic([(b"a", tmp_path / "a_dir"), (b"b", second)])
    assert not second.exists()  # never renamed: the files go in order, and none after a failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir"]  # no temp files left


def test_write_all_atomic_writes_every_file(tmp_path):
    files = [(f"{i}".encode(), tmp_path / f"{i}.txt") for i in range(3)]
    write_all_atomic(files)
    assert [p.read_bytes() for _, p in files] == [b"0", b"1", b"2"]
