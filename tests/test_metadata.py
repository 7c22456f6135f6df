"""anan_onnx.metadata.class_names: the optional ``anan.classes`` key, read defensively."""

from __future__ import annotations

import pytest

from anan_onnx.metadata import class_names


def test_class_names_read_a_json_list_with_or_without_prefix():
    assert class_names({"classes": '["cat", "dog"]'}) == ["cat", "dog"]
    assert class_names({"anan.classes": '["a", "b", "c"]'}) == ["a", "b", "c"]
    assert class_names({"k": "4"}) is None


@pytest.mark.parametrize(
    "raw", ["cat,dog", "[]", '{"0": "cat"}', "[1, 2]", '["a", 2]', "[" * 10000]
)
def test_unusable_class_names_are_ignored(raw):
    assert class_names({"classes": raw}) is None
