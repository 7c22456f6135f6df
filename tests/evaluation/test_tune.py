"""``tune``: grid parsing, a planted best configuration found through the data loader, the
CSV/JSON/emitted model, multi-class models, and one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures.evaluation_data import (
    QUIET,
    SMALL_GRID,
    as_input,
    centred_cnn,
    pixels,
    planted,
    run_cli,
    save_images,
    session,
    tunable_predictions,
)

from anan_onnx import AnanError, AnanParams, convert_model
from anan_onnx.evaluation.grid import Grid
from anan_onnx.evaluation.tune import emit_model, grid_search, tune
from anan_onnx.metadata import read_metadata
from anan_onnx.options import SplitOptions
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

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
