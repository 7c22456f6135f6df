"""Tests for research/train_base_cnn.py and the bundled models/catsdogs_cnn.keras."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from anan_onnx.training_record import find_training_record

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
Image = pytest.importorskip("PIL.Image")

pytestmark = pytest.mark.keras

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "models" / "catsdogs_cnn.keras"


def load_tool():
    """Import research/train_base_cnn.py as a module (a script, run by path)."""
    if "train_base_cnn" in sys.modules:
        return sys.modules["train_base_cnn"]
    path = REPO / "research" / "train_base_cnn.py"
    spec = importlib.util.spec_from_file_location("train_base_cnn", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_base_cnn"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def make_folder(root: Path, per_class: int = 12, size: int = 32) -> Path:
    """Two classes of generated images: bright-left vs bright-right, plus noise."""
    rng = np.random.default_rng(0)
    for name, side in (("left", 0), ("right", 1)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, size=(size, size + 8, 3), dtype=np.uint8)
            half = (size + 8) // 2
            img[:, side * half : (side + 1) * half] += 150
            fmt = "png" if i % 2 else "jpg"
            Image.fromarray(img).save(root / name / f"{name}{i}.{fmt}")
    return root


def has_optimizer_state(path: Path) -> bool:
    """True when a .keras archive stores optimizer variables or a compile config."""
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
            return "optimizer" in h5 or bool(config.get("compile_config"))


def test_training_entry_point(tmp_path: Path) -> None:
    tool = load_tool()
    data = make_folder(tmp_path / "imgs")
    out = tmp_path / "out"
    argv = [
        "--folder",
        str(data),
        "--size",
        "24",
        "--filters",
        "4,8",
        "--dense",
        "8",
        "--folds",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--seed",
        "3",
        "--test-split",
        "0.25",
        "--out",
        str(out),
        "--verbose",
        "0",
    ]
    assert tool.main(argv) == 0
    onnx_status = "unavailable" if tool.find_keras_to_onnx() is None else "ok"

    info = json.loads((out / "training.json").read_text())
    assert info["classes"] == ["left", "right"]
    cfg = info["config"]
    assert (cfg["folds"], cfg["epochs"], cfg["size"], cfg["seed"]) == (2, 2, 24, 3)
    assert cfg["filter_list"] == [4, 8] and cfg["dense"] == 8
    assert info["split"]["method"] == "stratified_seeded"
    assert info["split"]["cv"] == "stratified_kfold" and info["split"]["seed"] == 3
    assert len(info["train_files"]) == 18 and len(info["test_files"]) == 6
    assert not set(info["train_files"]) & set(info["test_files"])
    assert sorted(info["test_labels"]) == [0, 0, 0, 1, 1, 1]
    assert len(info["folds"]) == 2
    val = sorted(i for f in info["folds"] for i in f["val_indices"])
    assert val == list(range(18))  # the folds partition the training set
    for i, fold in enumerate(info["folds"], start=1):
        assert fold["epochs_run"] == 2 and fold["seed"] == 3 + i - 1
        assert 0.0 <= fold["val"]["accuracy"] <= 1.0 and "test" in fold
        path = out / f"fold{i}.keras"
        assert fold["onnx"]["status"] == onnx_status
        assert path.with_suffix(".onnx").is_file() == (onnx_status == "ok")
        assert path.is_file() and not has_optimizer_state(path)
        model = keras.models.load_model(path)
        assert model.input_shape == (None, 24, 24, 3)
        assert isinstance(model.layers[0], keras.layers.Conv2D)
        assert model.layers[-1].activation.__name__ == "sigmoid"
        assert model.predict(np.zeros((1, 24, 24, 3), np.float32), verbose=0).shape == (1, 1)


def test_single_model_with_given_test_set(tmp_path: Path) -> None:
    tool = load_tool()
    make_folder(tmp_path / "imgs" / "train", per_class=10)
    make_folder(tmp_path / "imgs" / "test", per_class=3)
    out, model_out = tmp_path / "out", tmp_path / "bundle" / "demo.keras"
    argv = [
        "--folder",
        str(tmp_path / "imgs"),
        "--size",
        "16",
        "--filters",
        "4",
        "--dense",
        "4",
        "--folds",
        "1",
        "--val-split",
        "0.2",
        "--epochs",
        "1",
        "--augment",
        "--out",
        str(out),
        "--model-out",
        str(model_out),
        "--verbose",
        "0",
        "--no-onnx",
    ]
    assert tool.main(argv) == 0
    info = json.loads((model_out.parent / "demo.training.json").read_text())
    assert info["split"]["method"] == "given" and info["split"]["cv"] == "single_holdout"
    assert info["split"]["val_split"] == 0.2 and len(info["folds"]) == 1
    assert len(info["folds"][0]["val_indices"]) == 4 and len(info["test_files"]) == 6
    assert all(f.startswith("test/") for f in info["test_files"])
    # data roots relative to each record file, so that a checkout can move
    assert info["data_root"] == "../imgs" and info["split"]["train_dir"] == "train"
    assert json.loads((out / "training.json").read_text())["data_root"] == "../imgs"
    assert find_training_record(model_out)["data_root"] == str(tmp_path / "imgs")
    assert model_out.read_bytes() == (out / "fold1.keras").read_bytes()
    assert not has_optimizer_state(model_out)


def test_parse_filters() -> None:
    tool = load_tool()
    assert tool.parse_filters("32,64,128", None) == [32, 64, 128]
    assert tool.parse_filters("32,64,128", 4) == [32, 64, 128, 256]
    assert tool.parse_filters("32,64,128", 2) == [32, 64]
    with pytest.raises(ValueError):
        tool.parse_filters("0,4", None)


def test_multiclass_head() -> None:
    tool = load_tool()
    args = tool.parse_args(["--size", "16", "--filters", "4", "--dense", "4", "--kernel", "5"])
    model = tool.build_model(args, 3)
    assert model.output_shape == (None, 3)
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.layers[0].kernel_size == (5, 5)


@pytest.mark.skipif(not BUNDLED.is_file(), reason="bundled model not present")
def test_bundled_model() -> None:
    assert BUNDLED.stat().st_size <= 15 * 1024 * 1024
    assert not has_optimizer_state(BUNDLED)
    model = keras.models.load_model(BUNDLED)
    assert model.input_shape == (None, 128, 128, 3)
    first = model.layers[0]
    assert isinstance(first, keras.layers.Conv2D)
    assert first.data_format == "channels_last"
    assert first.activation.__name__ == "relu"
    assert model.output_shape == (None, 1)
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)
