"""Inputs as data sets: folders (by content), @lists, --inputs-from, globs, URIs, streamed."""

from __future__ import annotations

import os
import shutil

import pytest

from anan_onnx.errors import AnanError
from anan_onnx.runtime.input_paths import is_image_file, is_uri, iter_inputs


def test_a_folder_gives_its_images_recursively_sorted_by_content_or_name(tree):
    folder, good, broken = tree
    no_suffix = folder / "b" / "photo"  # an image by its bytes only
    shutil.copy(good[0], no_suffix)
    found = list(iter_inputs([folder]))
    expected = [*good[:6], no_suffix, *good[6:], broken]  # a folder's files, then its folders
    assert found == [str(p) for p in expected]
    assert str(folder / "notes.txt") not in found and ".thumb.png" not in "".join(found)
    assert is_image_file(no_suffix) and not is_image_file(folder / "notes.txt")


def test_list_files_are_relative_to_their_folder_and_streamed(tree, tmp_path, monkeypatch):
    folder, good, _ = tree
    listing = folder / "list.txt"
    listing.write_text(f"# two images\n{good[1].relative_to(folder)}\n\n{good[0]}\n")
    other = tmp_path / "more.lst"
    other.write_text(f"{good[2]}\n")
    monkeypatch.chdir(tmp_path.parent)  # relative to the list, not to the working directory
    stream = iter_inputs([f"@{listing}"], inputs_from=[other])
    assert next(stream) == str(good[1])  # a generator: the first entry before the rest
    assert [*stream] == [str(good[0]), str(good[2])]


def test_globs_and_absolute_paths(tree, monkeypatch):
    folder, good, _ = tree
    monkeypatch.chdir(folder)
    found = list(iter_inputs(["a/*.png"], absolute=True))
    assert found == [str(p) for p in good[:6]]
    assert all(os.path.isabs(p) for p in found)
    assert list(iter_inputs(["a/img0000.png"])) == ["a/img0000.png"]  # as given by default


@pytest.mark.parametrize(
    "item, message",
    [
        ("missing.png", "does not exist"),
        ("nothing*.png", "matches no files"),
        ("@missing.txt", "cannot be read"),
        ("@empty.txt", "lists no inputs"),
        ("empty_dir", "has no image files"),
        ("s3://bucket/prefix", "predict it with -o DIR"),
    ],
)
def test_bad_inputs_are_one_line(tmp_path, monkeypatch, item, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(AnanError, match=message) as info:
        list(iter_inputs([item]))
    assert "\n" not in str(info.value)


def test_uris_pass_through_when_asked():
    assert is_uri("s3://bucket/a") and is_uri("gs://b/c") and not is_uri("C:\\x")
    assert list(iter_inputs(["s3://bucket/prefix/"], uris=True)) == ["s3://bucket/prefix/"]
