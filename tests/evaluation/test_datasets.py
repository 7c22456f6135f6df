"""Tests of anan_onnx.evaluation.datasets.load_splits on generated folders and archives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.dataset_files import RED, make_folder, make_npz
from PIL import Image

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.datasets import load_splits
from anan_onnx.runtime.inputs import InputSpec

SPEC = InputSpec("NHWC", 6, 6, 3, scale=1.0)  # scale 1: pixel values stay readable


def red_class(ds) -> np.ndarray:
    """The class of each image, read back from its red level."""
    reds = ds.images[:, 0, 0, 0]
    return np.array([min(RED, key=lambda c, r=r: abs(RED[c] - r)) for r in reds])


def check_consistent(splits) -> None:
    """Labels, pixels and paths agree; splits do not overlap."""
    seen: set[str] = set()
    for _, ds in splits.items():
        assert ds.images.dtype == np.float32 and ds.labels.dtype == np.int64
        assert len(ds.images) == len(ds.labels) == len(ds.paths)
        assert not seen & set(ds.paths)
        seen |= set(ds.paths)


# --- layout (a)/(c): one folder per class, no split -----------------------------------------


def test_folder_layout_is_split_stratified(tmp_path):
    root = make_folder(tmp_path / "fire", {"fire": 50, "no_fire": 20})
    s = load_splits(root, SPEC, val_fraction=0.25, test_fraction=0.2, seed=3)
    check_consistent(s)
    assert s.info["layout"] == "folder"
    assert s.test.classes == ["fire", "no_fire"]
    # test: 20% of 70 = 14 → 10 fire + 4 no_fire; val: 25% of the other 56 = 14 → 10 + 4.
    assert s.test.counts() == {"fire": 10, "no_fire": 4}
    assert s.val.counts() == {"fire": 10, "no_fire": 4}
    assert s.train.counts() == {"fire": 30, "no_fire": 12}
    assert s.info["counts"]["train"] == {"fire": 30, "no_fire": 12}
    for _, ds in s.items():
        np.testing.assert_array_equal(red_class(ds), ds.labels)
        for path, label in zip(ds.paths, ds.labels, strict=True):
            assert Path(path).parent.name == ds.classes[label]
    files = sorted(f for split in s.info["files"].values() for f in split)
    assert files == sorted(
        f"{c}/img{i:03d}.png" for c, n in [("fire", 50), ("no_fire", 20)] for i in range(n)
    )


def test_folder_split_is_deterministic(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 30, "b": 30})
    first = load_splits(root, SPEC, seed=7)
    again = load_splits(root, SPEC, seed=7)
    other = load_splits(root, SPEC, seed=8)
    assert first.info["files"] == again.info["files"]
    np.testing.assert_array_equal(first.test.images, again.test.images)
    assert first.info["files"]["test"] != other.info["files"]["test"]
    assert first.info["seed"] == 7 and first.info["test_fraction"] == 0.2
    assert json.loads(json.dumps(first.info)) == first.info  # recorded in outputs as JSON


def test_folder_split_matches_sklearn_train_test_split(tmp_path):
    # The split must equal research/train_base_cnn.py's, so the base CNN's test images stay unseen.
    from sklearn.model_selection import train_test_split

    root = make_folder(tmp_path / "d", {"a": 23, "b": 11})
    s = load_splits(root, SPEC, seed=5, val_fraction=0.15, test_fraction=0.2)
    files = [f"a/img{i:03d}.png" for i in range(23)] + [f"b/img{i:03d}.png" for i in range(11)]
    labels = np.array([0] * 23 + [1] * 11)
    tr, te = train_test_split(np.arange(34), test_size=0.2, stratify=labels, random_state=5)
    tr, te = np.sort(tr), np.sort(te)
    tr2, va = train_test_split(
        np.arange(len(tr)), test_size=0.15, stratify=labels[tr], random_state=5
    )
    assert s.info["files"]["test"] == [files[i] for i in te]
    assert s.info["files"]["val"] == [files[tr[i]] for i in np.sort(va)]
    assert s.info["files"]["train"] == [files[tr[i]] for i in np.sort(tr2)]


def test_folder_without_val_or_test(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 5, "b": 5})
    s = load_splits(root, SPEC, val_fraction=0, test_fraction=0)
    assert s.val is None and s.test is None and len(s.train) == 10
    assert list(s.info["counts"]) == ["train"]


def test_folder_resizes_every_image(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 4, "b": 4}, size=(30, 20), ext=".jpg")
    for i, size in enumerate([(5, 5), (64, 17)]):
        Image.new("RGB", size, (RED[1], 0, 0)).save(root / "b" / f"odd{i}.BMP")
    (root / "b" / "notes.txt").write_text("not an image")
    (root / "b" / ".hidden.png").write_bytes(b"")
    spec = InputSpec("NCHW", 5, 4, 1)
    s = load_splits(root, spec, val_fraction=0, test_fraction=0.25)
    assert s.train.images.shape[1:] == (1, 5, 4) and s.test.images.shape[1:] == (1, 5, 4)
    assert s.train.counts()["b"] + s.test.counts()["b"] == 6
    assert s.info["input"] == spec.to_metadata()


# --- layout (b): train/ and test/ ---------------------------------------------------------


def test_train_test_layout_draws_val_from_train(tmp_path):
    make_folder(tmp_path / "cd" / "train", {"cats": 20, "dogs": 20})
    make_folder(tmp_path / "cd" / "test", {"cats": 5, "dogs": 4})
    (tmp_path / "cd" / "PROVENANCE.txt").write_text("source")
    s = load_splits(tmp_path / "cd", SPEC, seed=1)
    check_consistent(s)
    assert s.info["layout"] == "train_test"
    assert s.test.counts() == {"cats": 5, "dogs": 4}
    assert s.val.counts() == {"cats": 3, "dogs": 3}  # 15% of 40 = 6, stratified
    assert s.train.counts() == {"cats": 17, "dogs": 17}
    assert all("/train/" in p for p in s.val.paths + s.train.paths)
    assert s.info["split"] == {
        "train": "train:random",
        "test": "test:stored",
        "val": "train:random",
    }
    assert s.info["test_fraction"] is None
    again = load_splits(tmp_path / "cd", SPEC, seed=1, layout="train_test")
    assert again.info["files"] == s.info["files"]


def test_train_test_layout_with_stored_val(tmp_path):
    for split, n in [("train", 6), ("val", 3), ("test", 2)]:
        make_folder(tmp_path / "d" / split, {"x": n, "y": n})
    s = load_splits(tmp_path / "d", SPEC)
    assert [len(ds) for _, ds in s.items()] == [12, 6, 4]
    assert s.info["split"]["val"] == "val:stored"


def test_train_test_class_folders_must_match(tmp_path):
    make_folder(tmp_path / "d" / "train", {"cats": 3, "dogs": 3})
    make_folder(tmp_path / "d" / "test", {"cats": 2, "wolves": 2})
    with pytest.raises(AnanError, match="use the same class folders in each split"):
        load_splits(tmp_path / "d", SPEC)


def test_forcing_a_layout(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 6, "b": 6})
    with pytest.raises(AnanError, match="has no train/ and test/ folders"):
        load_splits(root, SPEC, layout="train_test")
    with pytest.raises(AnanError, match=r"is a folder, not an \.npz file"):
        load_splits(root, SPEC, layout="npz")
    with pytest.raises(AnanError, match="layout must be one of folder, train_test, npz"):
        load_splits(root, SPEC, layout="csv")  # type: ignore[arg-type]


# --- layout (d): MedMNIST-style npz ---------------------------------------------------------


def test_npz_layout_resizes_and_converts(tmp_path):
    path = make_npz(tmp_path / "retina.npz")
    s = load_splits(path, SPEC)
    check_consistent(s)
    assert s.info["layout"] == "npz" and s.test.classes == ["0", "1", "2"]
    assert [len(ds) for _, ds in s.items()] == [12, 6, 8]
    assert s.test.images.shape == (8, 6, 6, 3)
    np.testing.assert_array_equal(s.test.labels, np.arange(8) % 3)
    # Gray pixels become RGB with the same value in each channel.
    np.testing.assert_allclose(s.test.images[:, 2, 3], np.repeat([[10], [60], [110]] * 3, 3, 1)[:8])
    assert s.test.paths[:2] == ["npz:test[0]", "npz:test[1]"]
    gray = load_splits(make_npz(tmp_path / "c.npz", color=True), InputSpec("NCHW", 4, 4, 1))
    assert gray.val.images.shape == (6, 1, 4, 4)
    # Pillow's L = R * 299/1000 (+ G, B terms = 0): 60 * 0.299 = 17.9 → 18.
    np.testing.assert_allclose(gray.val.images[1, 0], 18 / 255, atol=1e-6)


def test_npz_without_val_draws_it_from_train(tmp_path):
    path = make_npz(tmp_path / "a.npz", sizes=(("train", 30), ("test", 6)))
    s = load_splits(path, SPEC, val_fraction=0.2, seed=2)
    assert len(s.val) == 6 and len(s.train) == 24
    assert all(p.startswith("npz:train[") for p in s.val.paths + s.train.paths)
    assert not set(s.val.paths) & set(s.train.paths)


def test_npz_with_class_names(tmp_path):
    path = make_npz(tmp_path / "n.npz", classes=np.array(["healthy", "mild", "severe"]))
    s = load_splits(path, SPEC, positive=["mild", "severe"])
    assert s.info["original_classes"] == ["healthy", "mild", "severe"]
    assert s.info["positive"] == [1, 2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"test_labels": None}, r"has test_images but no test_labels"),
        (
            {"test_images": None, "test_labels": None},
            r"lacks keys .*needs test_images, test_labels",
        ),
        ({"val_labels": np.zeros(5, np.int64)}, "val_labels has 5 labels but val_images has 6"),
        ({"train_labels": np.full(12, -1)}, "label -1, outside the class range"),
        ({"classes": np.array(["a", "b"])}, "a label is 2, outside the 2 names in 'classes'"),
        ({"test_labels": np.zeros((8, 3))}, r"shape \(8, 3\) \(multi-label\?\)"),
        ({"test_labels": np.full(8, 0.5)}, "not class indices"),
        ({"test_images": np.zeros((8, 4, 4), np.float32)}, "expected uint8 pixels"),
    ],
)
def test_npz_errors(tmp_path, overrides, message):
    with pytest.raises(AnanError, match=message):
        load_splits(make_npz(tmp_path / "bad.npz", **overrides), SPEC)


def test_npz_refuses_unreadable_and_object_archives(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(AnanError, match=r"is not a readable \.npz archive"):
        load_splits(tmp_path / "x.npz", SPEC)
    np.savez(tmp_path / "o.npz", test_images=np.array([{}], dtype=object))
    with pytest.raises(AnanError, match="holds Python objects"):
        load_splits(tmp_path / "o.npz", SPEC)


# --- binarisation and sampling --------------------------------------------------------------


def test_binarisation_by_index_and_name(tmp_path):
    root = make_folder(tmp_path / "dr", {"0_none": 10, "1_mild": 10, "2_severe": 10, "3_pdr": 10})
    s = load_splits(root, SPEC, positive=[1, 2, 3], test_fraction=0.2, val_fraction=0)
    assert s.train.classes == ["negative", "positive"]
    assert s.info["positive"] == [1, 2, 3]
    assert s.info["original_classes"] == ["0_none", "1_mild", "2_severe", "3_pdr"]
    for _, ds in s.items():
        np.testing.assert_array_equal(ds.labels, (red_class(ds) >= 1).astype(int))
    # Stratified on the original classes: 2 test images of each.
    assert s.test.counts() == {"negative": 2, "positive": 6}
    by_name = load_splits(root, SPEC, positive=["1_mild", "2_severe", "3_pdr"], val_fraction=0)
    assert by_name.info["files"] == s.info["files"]
    with pytest.raises(AnanError, match=r"positive class 4 is not among the 4 classes .*0=0_none"):
        load_splits(root, SPEC, positive=[4])
    with pytest.raises(AnanError, match="leaves no negative or no positive class"):
        load_splits(root, SPEC, positive=[0, 1, 2, 3])


def test_max_per_class(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 40, "b": 12})
    s = load_splits(root, SPEC, max_per_class=10, val_fraction=0, test_fraction=0.2)
    assert {c: s.train.counts()[c] + s.test.counts()[c] for c in "ab"} == {"a": 10, "b": 10}
    again = load_splits(root, SPEC, max_per_class=10, val_fraction=0, test_fraction=0.2)
    assert again.info["files"] == s.info["files"]
    with pytest.raises(AnanError, match="max_per_class must be a positive integer"):
        load_splits(root, SPEC, max_per_class=0)


def test_progress_bars_do_not_break_loading(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 4, "b": 4})
    assert len(load_splits(root, SPEC, test_fraction=0.5, val_fraction=0, progress=True).test) == 4


# --- errors ---------------------------------------------------------------------------------


def test_missing_path_and_plain_file(tmp_path):
    with pytest.raises(AnanError, match=r"data set .*nowhere does not exist: check the path"):
        load_splits(tmp_path / "nowhere", SPEC)
    (tmp_path / "f.csv").write_text("a,b")
    with pytest.raises(AnanError, match="is a file, not a folder"):
        load_splits(tmp_path / "f.csv", SPEC)


def test_empty_folder_and_loose_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnanError, match="has no class folders: add one sub-folder"):
        load_splits(tmp_path / "empty", SPEC)
    (tmp_path / "loose").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "loose" / "a.png")
    with pytest.raises(AnanError, match="put each class's images in its own sub-folder"):
        load_splits(tmp_path / "loose", SPEC)


def test_class_folder_without_images_is_skipped_with_a_warning(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 5, "b": 5})
    (root / "c").mkdir()
    (root / "c" / "readme.txt").write_text("nothing")
    with pytest.warns(UserWarning, match=r"class folder .*/c has no images .*: skipped"):
        s = load_splits(root, SPEC, val_fraction=0, test_fraction=0)
    assert s.train.classes == ["a", "b"] and s.train.counts() == {"a": 5, "b": 5}
    # empty beside one class: no classifier to score
    (root / "b" / "readme.txt").write_text("nothing")
    for f in (root / "b").glob("*.png"):
        f.unlink()
    with pytest.warns(UserWarning), pytest.raises(AnanError, match=r"one class only \(a\)"):
        load_splits(root, SPEC)


def test_single_class(tmp_path):
    root = make_folder(tmp_path / "d", {"only": 5})
    with pytest.raises(AnanError, match=r"single class folder \(only\): a classifier needs two"):
        load_splits(root, SPEC)
    # An empty class folder in test/: that class keeps its number and has no test images.
    make_folder(tmp_path / "s" / "train", {"a": 4, "b": 4})
    make_folder(tmp_path / "s" / "test", {"a": 2, "b": 0})
    with pytest.warns(UserWarning, match=r"class folder .*test/b has no images"):
        s = load_splits(tmp_path / "s", SPEC, val_fraction=0)
    assert s.test.classes == ["a", "b"] and s.test.counts() == {"a": 2, "b": 0}
    # Binarising can leave one class: refused for training images, allowed for a stored test.
    one_class_test = {"test_labels": np.zeros((8, 1), np.int64)}
    s = load_splits(make_npz(tmp_path / "t.npz", **one_class_test), SPEC, positive=[1])
    assert s.test.counts() == {"negative": 8, "positive": 0}
    no_positive_train = {
        "train_labels": np.zeros((12, 1), np.int64),
        "val_images": None,
        "val_labels": None,
    }
    with pytest.raises(AnanError, match=r"single class \(negative\) in its train images"):
        load_splits(make_npz(tmp_path / "u.npz", **no_positive_train), SPEC, positive=[1])


def test_unreadable_image_is_named(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 5, "b": 5})
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(AnanError, match=r"image .*b/broken\.jpg is (not a readable|corrupt)"):
        load_splits(root, SPEC, val_fraction=0, test_fraction=0)


def test_too_few_images_to_stratify(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 10, "b": 1})
    with pytest.raises(
        AnanError,
        match=r"cannot draw a stratified test split .*the smallest class, b, "
        r"has 1 images",
    ):
        load_splits(root, SPEC)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 1.0}, r"val_fraction must be a number in \[0, 1\)"),
        ({"test_fraction": -0.1}, "test_fraction must be a number"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, message):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    with pytest.raises(AnanError, match=message):
        load_splits(root, SPEC, **kwargs)


@pytest.mark.parametrize("hw", [(4, 4), (6, 6)], ids=["model-size", "resized"])
def test_npz_bgr_model_gets_swapped_channels_at_any_stored_size(tmp_path, hw):
    # Red-only colour images: a BGR model must see the red value on its last channel, both
    # for rows already at the model's size and for rows that are resized.
    path = make_npz(tmp_path / "bgr.npz", hw=hw, color=True)
    s = load_splits(path, InputSpec("NHWC", 4, 4, 3, channel_order="BGR"))
    first = s.test.images[1, 2, 2]  # label 1: red = RED[1]
    np.testing.assert_allclose(first, [0, 0, RED[1] / 255], atol=1e-6)
