"""predict and verify stream their inputs, keep order, name classes, and never print NaN.

Covers issue 14 items 2 and 4 (and issue 15 item 2) from the command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from anan_onnx.cli import main
from anan_onnx.testing import VARIANTS, build_cnn


def _strict_json(text: str):
    """json.loads that refuses NaN/Infinity (which Python's json accepts by default)."""

    def refuse(constant: str):
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    onnx.save(build_cnn(VARIANTS["plain"], head="softmax", seed=5), root / "cnn.onnx")
    assert main(["convert", str(root / "cnn.onnx"), "-o", str(root / "cnn.anan.onnx")]) == 0
    rng = np.random.default_rng(9)
    for i in range(9):
        Image.fromarray(rng.integers(0, 256, (13, 12, 3), dtype=np.uint8)).save(root / f"{i}.png")
    np.save(root / "x.npy", rng.random((5, 3, 11, 11), dtype=np.float32))
    return root


def _predict_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["predict", *args, "--json"]) == 0
    return _strict_json(capsys.readouterr().out)


def test_batch_size_does_not_change_predictions_or_order(work, capsys, monkeypatch):
    monkeypatch.chdir(work)
    inputs = ["0.png", "1.png", "x.npy", *[f"{i}.png" for i in range(2, 9)]]
    whole = _predict_json(capsys, "cnn.anan.onnx", *inputs, "--batch-size", "100")
    names = [row["input"] for row in whole["predictions"]]
    assert names == ["0.png", "1.png", *[f"x.npy[{i}]" for i in range(5)], *inputs[3:]]
    for size in ("1", "2", "4"):
        chunked = _predict_json(capsys, "cnn.anan.onnx", *inputs, "--batch-size", size)
        assert chunked == whole


def test_fixed_batch_model_predicts_and_verifies_more_than_its_batch(work, capsys, monkeypatch):
    monkeypatch.chdir(work)
    code = main(["convert", "cnn.onnx", "-o", "b1.anan.onnx", "--batch", "1", "--verify", "8"])
    assert code == 0
    assert "PASS: 8/8" in capsys.readouterr().out
    fixed = _predict_json(capsys, "b1.anan.onnx", "0.png", "1.png", "2.png", "x.npy")
    dynamic = _predict_json(capsys, "cnn.anan.onnx", "0.png", "1.png", "2.png", "x.npy")
    assert len(fixed["predictions"]) == 8
    for a, b in zip(fixed["predictions"], dynamic["predictions"], strict=True):
        assert a["label"] == b["label"]
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], rtol=1e-5)
    assert main(["verify", "b1.anan.onnx"]) == 0  # default -n 16 > batch 1
    assert main(["verify", "b1.anan.onnx", "--inputs", "0.png", "1.png", "x.npy"]) == 0
    assert "7/7 predictions agree" in capsys.readouterr().out


def test_verify_engine_pads_a_fixed_batch(work, capsys, monkeypatch):
    """verify --engine on a fixed-batch model with -n not a multiple of the batch: the
    short last run is padded to OpenVINO's static shape and trimmed (6 = 4 + 2 here)."""
    pytest.importorskip("openvino")
    monkeypatch.chdir(work)
    assert main(["convert", "cnn.onnx", "-o", "b4.anan.onnx", "--batch", "4"]) == 0
    capsys.readouterr()
    # f32: the CPU's default bf16 may exceed the tolerance, which is not what is tested
    assert main(["verify", "b4.anan.onnx", "--engine", "openvino", "-n", "6",
                 "--engine-precision", "f32"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "6/6 predictions agree" in out and out.count(": PASS") == 6, out


def _with_classes(src: Path, dst: Path, value: str) -> None:
    model = onnx.load(src)
    model.metadata_props.add(key="anan.classes", value=value)
    onnx.save(model, dst)


def test_class_names_from_metadata(work, capsys, monkeypatch):
    monkeypatch.chdir(work)
    _with_classes(work / "cnn.anan.onnx", work / "named.anan.onnx", '["cat", "dog"]')
    out = _predict_json(capsys, "named.anan.onnx", "0.png", "x.npy")
    for row in out["predictions"]:
        assert row["class"] == ["cat", "dog"][row["label"]]
    capsys.readouterr()
    assert main(["predict", "named.anan.onnx", "0.png"]) == 0
    line = capsys.readouterr().out.strip()
    label = int(line.split("label=")[1].split()[0])
    assert line.endswith(f"\tclass={['cat', 'dog'][label]}")
    # names that do not fit the output (or are not a JSON list) are left out, not fatal
    _with_classes(work / "cnn.anan.onnx", work / "odd.anan.onnx", '["a", "b", "c"]')
    assert "class" not in _predict_json(capsys, "odd.anan.onnx", "0.png")["predictions"][0]
    _with_classes(work / "cnn.anan.onnx", work / "bad.anan.onnx", "cat,dog")
    assert "class" not in _predict_json(capsys, "bad.anan.onnx", "0.png")["predictions"][0]


def _nan_model(src: Path, dst: Path, rows: slice = slice(None)) -> None:
    """``src`` with NaN in its classifier weights (not the target Conv: convert refuses that)."""
    model = onnx.load(src)
    for i, init in enumerate(model.graph.initializer):
        if len(init.dims) == 2:
            array = numpy_helper.to_array(init).copy()
            array[rows] = np.nan
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, init.name))
    onnx.save(model, dst)


def test_non_finite_outputs_are_never_predictions(work, capsys, monkeypatch):
    monkeypatch.chdir(work)
    _nan_model(work / "cnn.base.onnx", work / "nan.onnx")
    capsys.readouterr()
    assert main(["predict", "nan.onnx", "0.png", "1.png"]) == 2
    captured = capsys.readouterr()
    assert "nan" not in captured.out.lower()
    assert captured.err.count("\n") == 1 and "0.png is NaN, not a prediction" in captured.err
    capsys.readouterr()
    assert main(["predict", "nan.onnx", "0.png", "x.npy", "--json"]) == 2
    captured = capsys.readouterr()
    doc = _strict_json(captured.out)  # complete, valid JSON
    assert doc["non_finite"] == 6 and len(doc["predictions"]) == 6
    assert all(r["probabilities"] is None and r["label"] is None for r in doc["predictions"])
    assert (
        captured.err.count("\n") == 1 and "6 of 6 inputs gave a non-finite output" in captured.err
    )


def test_verify_names_non_finite_outputs_as_a_failure(work, capsys, monkeypatch):
    monkeypatch.chdir(work)
    _nan_model(work / "cnn.anan.onnx", work / "nan.anan.onnx")
    _nan_model(work / "cnn.base.onnx", work / "nan.base.onnx")
    capsys.readouterr()
    assert main(["verify", "nan.anan.onnx", "--base", "nan.base.onnx", "-n", "6"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL: non-finite outputs (NaN/Inf)") and "6/6" not in out
    assert main(["verify", "nan.anan.onnx", "--base", "nan.base.onnx", "-n", "6", "--json"]) == 1
    report = _strict_json(capsys.readouterr().out)
    assert report["passed"] is False and report["non_finite"] == 6
    assert report["max_abs_diff"] is None and report["agreement"] is None
