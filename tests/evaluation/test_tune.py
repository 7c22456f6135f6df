"""``tune``: grid parsing, a planted best configuration found through the data loader, the
CSV/JSON/emitted model, multi-class models, and one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from anan_onnx import AnanError, AnanParams, convert_model
from anan_onnx.cli import main
from anan_onnx.evaluation.fastgrid import GridPoint
from anan_onnx.evaluation.grid import Grid
from anan_onnx.evaluation.tune import emit_model, grid_search, tune
from anan_onnx.metadata import read_metadata
from anan_onnx.options import RunOptions, SplitOptions
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

QUIET = RunOptions(progress=False)

SIZE = 11
SCALE = np.float32(1 / 255)
SMALL_GRID = Grid(k=(2, 3), mu=(1, 2), a=(1.5, 4.0), b=(0.3, 0.9))


# --- helpers (also used by test_evaluate.py) -----------------------------------------------


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def pixels(n: int, seed: int, classes_hint: int = 0) -> np.ndarray:
    """uint8 NCHW images: a random colour per image plus noise (kernels see varied signs)."""
    rng = np.random.default_rng(seed + 1000 * classes_hint)
    colour = rng.integers(0, 256, size=(n, 3, 1, 1))
    noise = rng.integers(-60, 61, size=(n, 3, SIZE, SIZE))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def as_input(px: np.ndarray) -> np.ndarray:
    """What the loader makes of the saved PNGs: pixel * float32(1/255)."""
    return px.astype(np.float32) * SCALE


def centred_cnn(x: np.ndarray, seed: int = 0, classes: int = 1) -> onnx.ModelProto:
    """Conv(3→6) → Relu → GAP → dense → sigmoid (or softmax), with the output bias set so
    that half of ``x`` is predicted positive: then ANAN's gains move decisions."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(6, 3, 3, 3)).astype(np.float32)
    b = (rng.normal(size=6) * 0.3).astype(np.float32)
    d = rng.normal(size=(6, classes)).astype(np.float32)

    def build(offset: np.ndarray) -> onnx.ModelProto:
        inits = [
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(b, "B"),
            numpy_helper.from_array(d, "D"),
            numpy_helper.from_array(offset.astype(np.float32), "C"),
        ]
        head = (
            helper.make_node("Sigmoid", ["logit"], ["prob"], name="head")
            if classes == 1
            else helper.make_node("Softmax", ["logit"], ["prob"], name="head", axis=1)
        )
        nodes = [
            helper.make_node("Conv", ["x", "W", "B"], ["conv"], name="conv1", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["act"], name="relu"),
            helper.make_node("GlobalAveragePool", ["act"], ["gap"], name="gap"),
            helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
            helper.make_node("MatMul", ["flat", "D"], ["mm"], name="dense"),
            helper.make_node("Add", ["mm", "C"], ["logit"], name="offset"),
            head,
        ]
        graph = helper.make_graph(
            nodes,
            "centred",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
            [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", classes])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model

    raw = session(build(np.zeros(classes))).run(None, {"x": x})[0]
    if classes == 1:
        p = np.clip(raw[:, 0], 1e-6, 1 - 1e-6)
        return build(-np.median(np.log(p / (1 - p)), keepdims=True))
    logits = np.log(np.clip(raw, 1e-9, 1))
    return build(-np.median(logits, axis=0))  # every class predicted about equally often


def save_images(folder: Path, px: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    for i, (img, label) in enumerate(zip(px, labels, strict=True)):
        target = folder / names[int(label)]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(target / f"img{i:03d}.png")


def tunable_predictions(base, x: np.ndarray, points: list[GridPoint]) -> np.ndarray:
    """Per configuration, the tunable ONNX export's outputs (independent of the fast path)."""
    sess = session(convert_model(base, AnanParams(), tunable=True, k_max=8).anan)
    out = []
    for p in points:
        feeds = {f"anan_{n}": np.asarray(getattr(p, n), np.float32) for n in ("k", "mu", "a", "b")}
        feeds["anan_idle"] = np.asarray(0.0, np.float32)
        out.append(sess.run(None, {"x": x, **feeds})[0])
    return np.stack(out)


def planted(tmp_path: Path, n: int = 48) -> tuple[Path, Path, GridPoint, np.ndarray]:
    """A model and a train/val/test folder whose val labels are exactly the predictions of
    one configuration c*; every other configuration predicts some val image differently,
    so c* is the only one with validation accuracy 1. Returns (model, data, c*, labels)."""
    points = SMALL_GRID.points()
    for seed in range(20):
        px = pixels(n, seed)
        x = as_input(px)
        base = centred_cnn(x, seed)
        preds = [tuple(v) for v in (tunable_predictions(base, x, points)[:, :, 0] > 0.5)]
        unique = [i for i, p in enumerate(preds) if preds.count(p) == 1 and 8 <= sum(p) <= n - 8]
        if unique:
            break
    else:  # pragma: no cover - the construction is deterministic
        pytest.fail("no seed gave a configuration with a unique prediction vector")
    best = points[unique[0]]
    labels = np.asarray(preds[unique[0]], np.int64)
    data = tmp_path / "data"
    names = ["neg", "pos"]
    save_images(data / "val", px, labels, names)
    extra = pixels(8, seed + 100)
    save_images(data / "train", extra, np.array([0, 1] * 4), names)
    save_images(data / "test", extra, np.array([1, 0] * 4), names)
    model = tmp_path / "base.onnx"
    onnx.save(base, model)
    return model, data, best, labels


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the search ----------------------------------------------------------------------------


def test_tune_finds_the_planted_configuration(tmp_path):
    model, data, best, labels = planted(tmp_path)
    emit = tmp_path / "out" / "tuned.anan.onnx"
    result = tune(model, data, grid=SMALL_GRID, metric="accuracy", run=QUIET, emit=emit)
    assert (result.params.k, result.params.mu, result.params.a, result.params.b) == (
        best.k,
        best.mu,
        best.a,
        best.b,
    )
    assert result.best["accuracy"] == 1.0
    others = [r for r in result.rows if r is not result.best]
    assert len(others) == SMALL_GRID.size - 1 and all(r["accuracy"] < 1.0 for r in others)
    assert result.tuned_on == "val" and result.n_images == len(labels)
    assert result.info["split"]["counts"]["val"] == {
        "neg": int((labels == 0).sum()),
        "pos": int((labels == 1).sum()),
    }
    # the emitted fixed-parameter model predicts the planted labels and records its params
    anan = onnx.load(emit)
    assert AnanParams.from_strings(read_metadata(anan)) == result.params
    assert read_metadata(anan)["tuned_metric"] == "accuracy"
    assert (emit.parent / "tuned.base.onnx").is_file()
    x = as_input(pixels(len(labels), 0))  # any batch: compare with the tunable export
    expected = tunable_predictions(onnx.load(model), x, [best])[0]
    np.testing.assert_allclose(session(anan).run(None, {"x": x})[0], expected, atol=1e-5)


def test_cli_tune_writes_csv_and_json(tmp_path, capsys):
    model, data, best, _ = planted(tmp_path)
    out = tmp_path / "tune"
    code, stdout, stderr = run_cli(
        capsys, "tune", model, data, "--k", "2,3", "--mu", "1:2", "--a", "1.5,4",
        "--b", "0.3,0.9", "--metric", "accuracy", "-o", out, "--no-progress",
    )  # fmt: skip
    assert code == 0, stderr
    assert "searched 16 configurations" in stdout
    with open(out / "grid.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and sum(r["best"] == "1" for r in rows) == 1
    chosen = next(r for r in rows if r["best"] == "1")
    assert (int(chosen["k"]), int(chosen["mu"]), float(chosen["a"]), float(chosen["b"])) == (
        best.k,
        best.mu,
        best.a,
        best.b,
    )
    record = json.loads((out / "best.json").read_text())
    assert record["params"]["k"] == best.k and record["scores"]["accuracy"] == 1.0
    assert record["split"]["layout"] == "train_test" and record["tuned_on"] == "val"
    assert len(record["split"]["files"]["val"]) == int(record["n_images"])


def test_tune_on_test_warns(tmp_path, capsys):
    model, data, _, _ = planted(tmp_path, n=24)
    with pytest.warns(UserWarning, match="tuning on the test split"):
        result = tune(model, data, grid=Grid(k=(2,), mu=(1,), a=(1.5,), b=(0.3,)),
                      tune_on="test", run=QUIET)  # fmt: skip
    assert result.tuned_on == "test" and result.n_images == 8
    code, _, stderr = run_cli(
        capsys, "tune", model, data, "--k", "2", "--mu", "1", "--a", "1.5", "--b", "0.3",
        "--tune-on", "test", "-o", tmp_path / "t", "--no-progress",
    )  # fmt: skip
    assert code == 0
    assert "anan-onnx: warning: tuning on the test split" in stderr
    assert "optimistically biased" in stderr


@pytest.mark.filterwarnings("ignore:mu=.*> k=")
def test_ties_go_to_the_first_configuration_in_grid_order():
    x = as_input(pixels(12, 3))
    base = centred_cnn(x, 3)
    grid = Grid(k=(1, 2), mu=(3, 4), a=(1.5,), b=(0.3,))  # μ > k: nothing ever triggers
    result = grid_search(base, x, np.arange(12) % 2, grid, run=QUIET)
    assert len({r["f1"] for r in result.rows}) == 1
    assert result.best is result.rows[0] and not result.improves_on_base


def test_multiclass_model(tmp_path, capsys):
    n = 36
    px = pixels(n, 7)
    x = as_input(px)
    base = centred_cnn(x, 7, classes=3)
    labels = session(base).run(None, {"x": x})[0].argmax(axis=1)  # base is right: F1 = 1
    assert len(set(labels.tolist())) == 3
    data = tmp_path / "three"
    save_images(data, px, labels, ["a", "b", "c"])
    model = tmp_path / "softmax.onnx"
    onnx.save(base, model)
    split = SplitOptions(val_fraction=0.5, test_fraction=0.2)
    result = tune(model, data, grid=SMALL_GRID, split=split, run=QUIET)
    assert "predicted_rate_2" in result.base_scores and result.base_scores["f1"] == 1.0
    assert result.best["f1"] <= 1.0 and result.n_images > 0
    # binarised (--positive) data do not fit a 3-class softmax: one-line error
    code, _, stderr = run_cli(capsys, "tune", model, data, "--positive", "c", "--k", "2",
                              "--no-progress", "-o", tmp_path / "o")  # fmt: skip
    assert code == 2 and "--positive binarises the data set, but the model outputs 3" in stderr


def test_a_class_without_tuning_images_is_not_averaged_in(tmp_path):
    """Classes present are those with labels in the split tuned on, not the data set's
    class list: a class with images elsewhere but none here has no support here."""
    from anan_onnx.evaluation.class_match import match_classes

    x = as_input(pixels(36, 7))
    base = centred_cnn(x, 7, classes=3)
    labels = session(base).run(None, {"x": x})[0].argmax(axis=1)  # base is right: F1 = 1
    kept = labels != 2  # class "c" is in the data set but has no image here
    x, labels = x[kept], labels[kept]
    classes = match_classes(["a", "b", "c"], ["a", "b", "c"], 3)
    grid = Grid(k=(2,), mu=(1,), a=(1.5,), b=(0.3,))
    result = grid_search(base, x, labels, grid, class_map=classes, run=QUIET)
    assert result.base_scores["f1"] == 1.0  # over a and b; with c averaged in it was 2/3
    auc = grid_search(base, x, labels, grid, metric="auc", class_map=classes, run=QUIET)
    assert np.isfinite(auc.base_scores["roc_auc"])  # defined over a and b (it was NaN)
    assert np.isfinite(auc.best["value"])
    # One class only: AUC is undefined for every configuration: refused, not picked by loss.
    one = labels == 0
    with pytest.raises(AnanError, match=r"'auc' is undefined \(NaN\).*pick another --metric"):
        grid_search(base, x[one], labels[one], grid, metric="auc", class_map=classes, run=QUIET)


# --- refusals: one line, exit 2 ------------------------------------------------------------


def sigmoid_model(tmp_path: Path) -> Path:
    path = tmp_path / "sig.onnx"
    onnx.save(build_cnn(VARIANTS["plain"], head="sigmoid", seed=1), path)
    return path


def image_folder(root: Path, classes: list[str], per_class: int = 6) -> Path:
    for c, name in enumerate(classes):
        save_images(root, pixels(per_class, c), np.zeros(per_class, np.int64), [name])
    return root


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "has no class folders"),
        ("unreadable", "is not a readable image"),
        ("three_classes", "(one sigmoid output or two outputs) but the data set has 3"),
        ("anan_model", "already an ANAN model: pass the base CNN"),
        ("k0", "k must be a positive integer, got 0"),
        ("a_text", "--a: 'x' is not a number or a range"),
        ("no_val", "no val split to tune on"),
        ("missing_model", "no such file"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, capsys, case, message):
    model = sigmoid_model(tmp_path)
    data = image_folder(tmp_path / "data", ["cats", "dogs"])
    extra: list[str] = ["--k", "2", "--mu", "1", "--a", "1.5", "--b", "0.3"]
    if case == "empty":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "unreadable":
        (data / "dogs" / "broken.png").write_bytes(b"not an image at all")
    elif case == "three_classes":
        data = image_folder(tmp_path / "three", ["a", "b", "c"])
    elif case == "anan_model":
        anan = tmp_path / "m.anan.onnx"
        onnx.save(convert_model(onnx.load(model), AnanParams()).anan, anan)
        model = anan
    elif case == "k0":
        extra[1] = "0"
    elif case == "a_text":
        extra[5] = "x"
    elif case == "no_val":
        extra += ["--val-fraction", "0"]
    elif case == "missing_model":
        model = tmp_path / "nope.onnx"
    code, stdout, stderr = run_cli(capsys, "tune", model, data, *extra, "--no-progress",
                                   "-o", tmp_path / "out")  # fmt: skip
    assert code == 2, stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anan-onnx: error: "), stderr
    assert message in lines[0]
    assert not (tmp_path / "out" / "best.json").exists()


def test_import_and_cli_parser_need_no_optional_packages():
    """``import anan_onnx`` and building the CLI (tune/evaluate included) import neither
    TensorFlow nor SciPy, scikit-learn, matplotlib or tqdm."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        BLOCKED = ("tensorflow", "keras", "tf2onnx", "scipy", "sklearn", "matplotlib", "tqdm")
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked in this test")
        sys.meta_path.insert(0, Block())
        import anan_onnx
        from anan_onnx.cli import main
        try:
            main(["tune", "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        assert callable(anan_onnx.tune) and callable(anan_onnx.evaluate)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok") and "--rules" in result.stdout


def test_emit_writes_the_anan_model_and_its_base_both_or_neither(tmp_path):
    base = build_cnn(VARIANTS["plain"])
    images = random_batch(VARIANTS["plain"], 8)
    labels = np.arange(8) % 2
    result = grid_search(base, images, labels, Grid(k=(2,), mu=(1,), a=(1.5,), b=(0.3,)))
    out = tmp_path / "out"
    (out / "m.base.onnx").mkdir(parents=True)  # the base cannot be written there
    with pytest.raises(AnanError, match=r"cannot write .*m\.base\.onnx"):
        emit_model(base, result, out / "m.anan.onnx")
    assert sorted(p.name for p in out.iterdir()) == ["m.base.onnx"]  # no ANAN model alone
    (out / "m.base.onnx").rmdir()
    emit_model(base, result, out / "m.anan.onnx")
    assert sorted(p.name for p in out.iterdir()) == ["m.anan.onnx", "m.base.onnx"]
    assert read_metadata(onnx.load(out / "m.anan.onnx"))["base_model"] == "m.base.onnx"


# --- training.json, --emit, output format -------------------------------------------------


def record_beside(model: Path, data: Path, train_files: list[str], val: list[int]) -> Path:
    """A training.json beside ``model`` as research/train_base_cnn.py writes it (relative root)."""
    labels = [int(f.split("/")[1] == "pos") for f in train_files]
    test = sorted(str(p.relative_to(data)) for p in (data / "test").rglob("*.png"))
    record = {
        "classes": ["neg", "pos"],
        "data_root": os.path.relpath(data, model.parent),
        "train_files": train_files,
        "train_labels": labels,
        "test_files": test,
        "test_labels": [int(f.split("/")[1] == "pos") for f in test],
        "folds": [{"fold": 1, "model": "fold1.keras", "val_indices": val}],
    }
    path = model.with_name(model.stem + ".training.json")
    path.write_text(json.dumps(record))
    return path


def test_tune_takes_convert_preprocessing_options(tmp_path, capsys):
    """tune has convert's preprocessing options: the emitted model records them."""
    model, data, _, _ = planted(tmp_path, n=24)
    out = tmp_path / "bgr.anan.onnx"
    code, _, stderr = run_cli(capsys, "tune", model, data, "--k", "2", "--mu", "1", "--a", "1.5",
                              "--b", "0.3", "--channel-order", "BGR", "--resize", "nearest",
                              "--emit", out, "--emit-anyway", "--no-progress",
                              "-o", tmp_path / "o")  # fmt: skip
    assert code in (0, 1), stderr
    meta = read_metadata(onnx.load(out))
    assert (meta["channel_order"], meta["resize"]) == ("BGR", "nearest")


def test_tune_takes_validation_images_from_training_json(tmp_path):
    model, data, _, _ = planted(tmp_path, n=24)
    train = sorted(str(p.relative_to(data)) for p in (data / "train").rglob("*.png"))
    val = [0, 2, 5, 7]  # the fold's own validation images: never its training images
    record_beside(model, data, train, val)
    grid = Grid(k=(2,), mu=(1,), a=(1.5,), b=(0.3,))
    result = tune(model, data, grid=grid, run=QUIET)
    assert result.n_images == len(val)
    assert result.info["split"]["method"] == "training.json"
    assert "validation (training.json)" in result.info["split"]["val"]
    assert result.info["classes"] == ["neg", "pos"]
    # without validation images in the record: a warning, and the usual split
    record_beside(model, data, train, [])
    with pytest.warns(UserWarning, match="records no validation images"):
        fallback = tune(model, data, grid=grid, run=QUIET)
    assert fallback.info["split"]["layout"] == "train_test" and fallback.n_images == 24


def test_emit_needs_a_configuration_that_beats_the_base(tmp_path, capsys):
    model, data, _, _ = planted(tmp_path, n=24)
    nothing = ["--k", "1", "--mu", "3", "--a", "1.5", "--b", "0.3"]  # μ > k: never triggers
    emit = tmp_path / "e" / "t.anan.onnx"
    code, stdout, stderr = run_cli(capsys, "tune", model, data, *nothing, "--no-progress",
                                   "-o", tmp_path / "o", "--emit", emit)  # fmt: skip
    assert code == 1 and not emit.exists()
    assert "t.anan.onnx was not written: no configuration beats the base CNN" in stderr
    assert "not written: no configuration beats the base CNN (--emit-anyway" in stdout
    assert "searched 1 configuration on" in stdout  # singular
    assert (tmp_path / "o" / "grid.csv").is_file()  # the search itself is kept
    code, stdout, _ = run_cli(capsys, "tune", model, data, *nothing, "--no-progress",
                              "-o", tmp_path / "o", "--emit", emit, "--emit-anyway")  # fmt: skip
    assert code == 0 and emit.is_file() and f": {emit}" in stdout
    assert json.loads(read_metadata(onnx.load(emit))["classes"]) == ["neg", "pos"]


def test_summary_is_aligned_and_grid_csv_has_no_duplicate_columns(tmp_path, capsys):
    model, data, _, _ = planted(tmp_path, n=24)
    out = tmp_path / "o"
    code, stdout, _ = run_cli(capsys, "tune", model, data, "--k", "2,3", "--mu", "1",
                              "--a", "1.5", "--b", "0.3", "--no-progress", "-o", out)  # fmt: skip
    assert code == 0 and "searched 2 configurations" in stdout
    colons = {line.index(" : ") for line in stdout.splitlines()[1:]}
    assert len(colons) == 1, stdout  # every label padded to the same width
    with open(out / "grid.csv") as f:
        header = next(csv.reader(f))
    assert "value" not in header and "bce" not in header
    assert len(header) == len(set(header)) and {"loss", "f1", "best"} <= set(header)
