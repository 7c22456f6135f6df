"""benchmarks/wasm_ratio.py without a browser: its MNIST model, the variants it converts and the
floor stand-in it measures against (the browser run itself is the script's job)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import anan_onnx
from benchmarks import wasm_ratio


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wasm_ratio")
    wasm_ratio.base_model("mnist", folder)
    return folder


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_the_mnist_model_is_channels_first_and_its_variants_differ_in_nodes(folder):
    base = folder / "mnist.base.onnx"
    assert wasm_ratio.input_shape(base, 4) == [4, 1, 28, 28]
    nodes = {v: wasm_ratio.node_count(wasm_ratio.converted(base, v)) for v in ("default", "unroll")}
    # the default folds the k = 4 steps into the pick f·d + v₋ (2 nodes); unrolled: the pair
    # on the flat tests (Reshape, Mul, Add), k − 1 step products, the sum and its Reshape back
    assert nodes["unroll"] - nodes["default"] == anan_onnx.AnanParams().k + 2
    meta = anan_onnx.read_metadata(str(folder / "mnist.default.anan.onnx"))
    assert meta["steps"] == "folded"


def test_the_floor_stand_in_adds_four_nodes_and_runs(folder):
    base = folder / "mnist.base.onnx"
    floor = wasm_ratio.converted(base, "floor")
    model = onnx.load(floor)
    onnx.checker.check_model(model, full_check=True)
    assert len(model.graph.node) == wasm_ratio.node_count(base) + 4
    assert {"GlobalAveragePool", "Sign"} <= {n.op_type for n in model.graph.node}
    x = np.random.default_rng(0).random((2, 1, 28, 28), np.float32)
    assert _run(floor, x).shape == _run(base, x).shape == (2, 10)


def test_unknown_models_and_variants_are_refused(capsys):
    for argv in (["--models", "mnist,resnet"], ["--variants", "default,fast"]):
        with pytest.raises(SystemExit) as exit_info:
            wasm_ratio.parse_args(argv)
        assert exit_info.value.code == 2
    assert "unknown variant fast" in capsys.readouterr().err
