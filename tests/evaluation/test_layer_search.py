"""``tune --layers``: the grid searched per layer, checked against the literal loop."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures.evaluation_data import (
    QUIET,
    SCALE,
    SIZE,
    as_input,
    pixels,
    run_cli,
    save_images,
    session,
)
from onnx import TensorProto, helper, numpy_helper

from anan_onnx import AnanError, AnanParams, LiteralReference
from anan_onnx.evaluation.control import control
from anan_onnx.evaluation.grid import Grid
from anan_onnx.evaluation.layer_search import layer_search
from anan_onnx.evaluation.scores import scores
from anan_onnx.evaluation.statistics import holm

GRID = Grid(k=(2, 3), mu=(1, 2), a=(1.5,), b=(0.5,))
NAMES = ["neg", "pos"]


def two_conv_cnn(x: np.ndarray, seed: int = 0) -> onnx.ModelProto:
    """Conv(3→6) → Relu → Conv(6→4) → Relu → GAP → dense → sigmoid, its output bias set so
    that half of ``x`` is predicted positive (ANAN's gains then move decisions)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "W1": rng.normal(size=(6, 3, 3, 3)),
        "B1": rng.normal(size=6) * 0.3,
        "W2": rng.normal(size=(4, 6, 3, 3)) * 0.3,
        "B2": rng.normal(size=4) * 0.3,
        "D": rng.normal(size=(4, 1)),
    }

    def build(offset: float) -> onnx.ModelProto:
        inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in arrays.items()]
        inits.append(numpy_helper.from_array(np.array([offset], np.float32), "C"))
        nodes = [
            helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], name="conv1", pads=[1] * 4),
            helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
            helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], name="conv2", pads=[1] * 4),
            helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
            helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
            helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
            helper.make_node("MatMul", ["flat", "D"], ["mm"], name="dense"),
            helper.make_node("Add", ["mm", "C"], ["logit"], name="offset"),
            helper.make_node("Sigmoid", ["logit"], ["prob"], name="head"),
        ]
        graph = helper.make_graph(
            nodes,
            "two_conv",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
            [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model

    p = np.clip(session(build(0.0)).run(None, {"x": x})[0][:, 0], 1e-6, 1 - 1e-6)
    return build(float(-np.median(np.log(p / (1 - p)))))


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("layers")
    rng = np.random.default_rng(5)
    sets = {"train": pixels(8, 1), "val": pixels(24, 2), "test": pixels(20, 3)}
    labels = {name: rng.integers(0, 2, len(px)) for name, px in sets.items()}
    for name, px in sets.items():
        save_images(root / "data" / name, px, labels[name], NAMES)
    model = root / "base.onnx"
    onnx.save(two_conv_cnn(as_input(sets["val"]), seed=3), model)
    return model, root / "data", {"x_val": as_input(sets["val"]), "x_test": as_input(sets["test"]),
                                  "y_val": labels["val"], "y_test": labels["test"]}  # fmt: skip


def _literal(base: onnx.ModelProto, layer: str, params: AnanParams, x: np.ndarray) -> np.ndarray:
    return LiteralReference(base, layer, params).run(x).outputs[0]


def test_each_layer_is_tuned_on_val_and_scored_on_test(setup):
    model, data, arrays = setup
    base = onnx.load(model)
    result = layer_search(model, data, grid=GRID, metric="accuracy", run=QUIET)
    assert [r["layer"] for r in result.rows] == ["conv1", "conv2"]
    assert [r["depth"] for r in result.rows] == [1, 2]
    base_val = session(base).run(None, {"x": arrays["x_val"]})[0]
    base_test = session(base).run(None, {"x": arrays["x_test"]})[0]
    y_val, y_test = arrays["y_val"], arrays["y_test"]
    _, control_scores = control(y_val, base_val, base_test, y_test, "accuracy")
    for row in result.rows:
        # the validation best, recomputed with the literal loop over the whole grid
        literal_val = [
            scores(y_val, _literal(base, row["layer"], p.params(AnanParams()), arrays["x_val"]))
            for p in GRID.points()
        ]
        assert row["val_anan"] == pytest.approx(max(s["accuracy"] for s in literal_val))
        chosen = AnanParams(k=row["k"], mu=row["mu"], a=row["a"], b=row["b"])
        test_out = _literal(base, row["layer"], chosen, arrays["x_test"])
        assert row["test_anan"] == pytest.approx(scores(y_test, test_out)["accuracy"])
        assert row["test_anan_low"] <= row["test_anan"] <= row["test_anan_high"]
        assert row["test_base"] == pytest.approx(scores(y_test, base_test)["accuracy"])
        assert row["test_control"] == pytest.approx(control_scores["accuracy"])
    ps = [r["p_bootstrap"] for r in result.rows]
    assert all(0 <= p <= 1 for p in ps)
    assert [r["p_holm"] for r in result.rows] == holm(ps)
    # the two layers' searches differ: the split is around each layer, not the first
    vals = [[r["val_anan"], r["k"], r["mu"], r["test_anan"]] for r in result.rows]
    assert vals[0] != vals[1]


def test_cli_tune_layers_writes_the_table(setup, tmp_path, capsys):
    model, data, _ = setup
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys, "tune", model, data, "--layers", "conv2", "--k", "2", "--mu", "1",
        "--a", "1.5", "--b", "0.5", "--metric", "accuracy", "-o", out, "--no-progress",
    )  # fmt: skip
    assert code == 0, stderr
    with open(out / "layers.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["layer"] for r in rows] == ["conv2"]
    assert "conv2" in stdout and (out / "layers.md").is_file()
    assert (out / "layers.png").read_bytes().startswith(b"\x89PNG")


def test_unknown_layer_is_refused(setup):
    model, data, _ = setup
    with pytest.raises(AnanError, match="no Conv node named 'nope'"):
        layer_search(model, data, layers="nope", grid=GRID, run=QUIET)


def test_evaluate_layers_tests_each_layer_with_holm(setup, tmp_path):
    from anan_onnx.evaluation.evaluate import evaluate

    _, data, arrays = setup
    folds = tmp_path / "folds"
    folds.mkdir()
    for i in range(3):
        onnx.save(two_conv_cnn(arrays["x_val"], seed=10 + i), folds / f"fold{i + 1}.onnx")
    ev = evaluate(folds, data, grid=GRID, metric="accuracy", layers="all", run=QUIET)
    assert ev.variants == ["multiplicative@conv1", "multiplicative@conv2"]
    tests = [t for t in ev.tests() if t["reference"] == "base" and t["model"] != "control"]
    for metric in {t["metric"] for t in tests}:
        family = [t for t in tests if t["metric"] == metric]
        assert len(family) == 2
        assert [t["p_holm"] for t in family] == holm([t["p_value"] for t in family])
    # each layer variant is that layer tuned and tested: fold 1's conv2 against the literal loop
    fold = ev.folds[0]
    chosen = AnanParams.from_strings(
        {k: str(v) for k, v in fold["params"]["multiplicative@conv2"].items()}
    )
    out = _literal(onnx.load(folds / "fold1.onnx"), "conv2", chosen, arrays["x_test"])
    expected = scores(arrays["y_test"], out)["accuracy"]
    assert fold["scores"]["multiplicative@conv2"]["accuracy"] == pytest.approx(expected)
    assert "p (Holm)" in ev.markdown()


def test_cli_tune_layers_refuses_emit(setup, tmp_path, capsys):
    model, data, _ = setup
    code, _, stderr = run_cli(
        capsys, "tune", model, data, "--layers", "all", "--emit", tmp_path / "x.anan.onnx",
        "--no-progress",
    )  # fmt: skip
    assert code != 0 and "tune --layers takes no --emit" in stderr
    assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "x.anan.onnx").exists()


def test_cli_tune_layers_honours_preprocessing_and_json(setup, tmp_path, capsys):
    """The preprocessing options (here --scale) reach the layer search, and
    --json prints the per-layer table as JSON."""
    import json

    model, data, arrays = setup
    code, stdout, stderr = run_cli(
        capsys, "tune", model, data, "--layers", "conv1", "--k", "2", "--mu", "1",
        "--a", "1.5", "--b", "0.5", "--metric", "accuracy", "-o", tmp_path / "out",
        "--scale", "0.02", "--json", "--no-progress",
    )  # fmt: skip
    assert code == 0, stderr
    (row,) = json.loads(stdout)["layers"]
    assert row["layer"] == "conv1"
    base = onnx.load(model)
    x = np.rint(arrays["x_test"] / SCALE).astype(np.float32) * np.float32(0.02)
    scaled = scores(arrays["y_test"], session(base).run(None, {"x": x})[0])["accuracy"]
    default = scores(arrays["y_test"], session(base).run(None, {"x": arrays["x_test"]})[0])
    assert scaled != default["accuracy"]  # the option changes the result
    assert row["test_base"] == pytest.approx(scaled)


def test_cli_tune_layers_refuses_emit_anyway(setup, tmp_path, capsys):
    model, data, _ = setup
    code, _, stderr = run_cli(
        capsys, "tune", model, data, "--layers", "all", "--emit-anyway", "--no-progress",
    )  # fmt: skip
    assert code != 0 and "tune --layers takes no --emit-anyway" in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("layers", ["first:x", "first:0", "first:²"])
def test_bad_layer_selections_are_refused(setup, layers):
    """tune/evaluate --layers are validated as convert's are: a one-line AnanError, not a
    ValueError or an empty search."""
    model, data, _ = setup
    with pytest.raises(AnanError, match="first:N needs a whole N >= 1"):
        layer_search(model, data, layers=layers, grid=GRID, run=QUIET)
