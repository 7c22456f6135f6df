"""Classes matched by name between a data set and a model (``tune``/``evaluate``), a subset
of a multi-class model's classes, the unnamed model's printed order, and the bootstrap
interval of the metric on small tuning sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures.evaluation_data import as_input, centred_cnn, pixels, run_cli, save_images, session
from sklearn.metrics import f1_score

from anan_onnx import AnanError
from anan_onnx.evaluation import tune as tune_module
from anan_onnx.evaluation.class_match import match_classes, name_key
from anan_onnx.evaluation.evaluate import evaluate
from anan_onnx.evaluation.grid import Grid
from anan_onnx.evaluation.scores import multiclass_scores
from anan_onnx.evaluation.tune import tune
from anan_onnx.metadata import class_names, read_metadata, write_metadata
from anan_onnx.options import RunOptions
from anan_onnx.testing import VARIANTS, build_cnn

QUIET = RunOptions(progress=False)

#: The model's outputs, in its order (Fashion-MNIST style: a name no folder can hold) ...
NAMES = ["T-shirt/top", "Trouser", "Bag"]
#: ... and the folder holding each output's images: in name order Bag, T-shirt-top, Trouser,
#: so numbering the folders alphabetically gives every image a wrong label.
FOLDERS = ["T-shirt-top", "Trouser", "Bag"]
ONE = Grid(k=(2,), mu=(1,), a=(1.5,), b=(0.3,))
GRID = Grid(k=(2, 3), mu=(1,), a=(1.5, 4.0), b=(0.3,))


# --- the rule, without models --------------------------------------------------------------


def test_names_match_whatever_their_order_and_punctuation():
    model = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
    folders = sorted(["T-shirt-top", "trouser", "Bag", "ankle_boot"])
    m = match_classes(model, folders, 10)
    assert dict(zip(folders, m.index, strict=True)) == {
        "Bag": 8, "T-shirt-top": 0, "ankle_boot": 9, "trouser": 1,
    }  # fmt: skip
    assert m.how == "name" and m.subset and m.present == [0, 1, 8, 9]
    assert "4 of the model's 10 classes present" in m.note and "Pullover" in m.note
    assert m.classes_to_record() == model
    np.testing.assert_array_equal(m.labels(np.array([0, 1, 2, 3, 0])), [8, 0, 9, 1, 8])
    assert name_key("T-shirt/top") == name_key("t_shirt  TOP") != name_key("tshirt top")


def test_unknown_or_ambiguous_names_are_refused_with_both_lists():
    with pytest.raises(AnanError) as e:
        match_classes(["cats", "dogs"], ["dogs", "kittens"], 2)
    assert "[kittens] are not among the model's classes ([cats, dogs])" in str(e.value)
    assert "the data set has [dogs, kittens]" in str(e.value)
    # "a b" and "a-b" compare equal once normalised: only an exact name picks one of them
    assert match_classes(["a b", "a-b", "c"], ["a b", "c"], 3).index == [0, 2]
    with pytest.raises(AnanError, match=r"\[a_b\] are not among"):
        match_classes(["a b", "a-b", "c"], ["a_b", "c"], 3)
    with pytest.raises(AnanError, match="all match the same model class"):
        match_classes(["Bag", "Coat"], ["Bag", "bag"], 2)
    with pytest.raises(AnanError, match="scores need images of two or more classes"):
        match_classes(["a", "b", "c"], ["b"], 3)


def test_a_model_without_names():
    order = match_classes(None, ["neg", "pos"], 2)
    assert order.index == [0, 1] and order.how == "order"
    assert "records no class names" in order.note and "(neg=0, pos=1)" in order.note
    by_index = match_classes(None, ["2", "7"], 10)  # folders named by output index
    assert by_index.index == [2, 7] and by_index.subset and by_index.classes_to_record() is None
    with pytest.raises(AnanError, match=r"records no class names and has 10 classes .*convert "
                       r"--classes\), or name the class folders by output index"):  # fmt: skip
        match_classes(None, ["cat", "dog"], 10)
    with pytest.raises(AnanError, match="pass --positive CLASSES to binarise"):
        match_classes(None, ["a", "b", "c"], 2)
    # names that cannot be the model's (wrong count) are treated as none
    assert match_classes(["x", "y", "z"], ["a", "b"], 2).how == "order"


def test_index_folders_are_ascii_digits_and_name_one_output_each():
    # "²".isdigit() is true but it is no index: such folders are names, matched by order
    superscript = match_classes(None, ["0", "²"], 2)
    assert superscript.how == "order" and superscript.index == [0, 1]
    with pytest.raises(AnanError, match=r"\[0, 00\] all name the same model output"):
        match_classes(None, ["0", "00", "1"], 3)


def test_binarised_data_need_a_binary_model():
    m = match_classes(["no fire", "fire"], ["negative", "positive"], 2, binarised=True)
    assert m.index == [0, 1] and m.classes_to_record() == ["no fire", "fire"]
    assert match_classes(None, ["negative", "positive"], 2, binarised=True).classes_to_record() \
        == ["negative", "positive"]  # fmt: skip
    with pytest.raises(AnanError, match="--positive binarises the data set, but the model "
                       "outputs 10 class probabilities: leave --positive out"):  # fmt: skip
        match_classes(None, ["negative", "positive"], 10, binarised=True)


def test_scores_over_a_subset_of_the_classes():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=40)
    y = np.array([0, 2] * 20)
    s = multiclass_scores(y, p, classes=[0, 2])
    pred = p.argmax(axis=1)
    assert s["f1"] == pytest.approx(f1_score(y, pred, labels=[0, 2], average="macro"))
    assert s["f1"] > multiclass_scores(y, p)["f1"]  # absent classes no longer count as 0
    from sklearn.metrics import roc_auc_score

    expected = np.mean([roc_auc_score(y == c, p[:, c]) for c in (0, 2)])
    assert s["roc_auc"] == pytest.approx(expected) and np.isnan(multiclass_scores(y, p)["roc_auc"])


# --- tune and evaluate ---------------------------------------------------------------------


def named_model(tmp_path: Path, names: list[str] | None = NAMES, seed: int = 7):
    """A 3-class softmax model recording ``names``, its images and its own predictions."""
    px = pixels(36, seed)
    x = as_input(px)
    base = centred_cnn(x, seed, classes=3)
    pred = session(base).run(None, {"x": x})[0].argmax(axis=1)
    assert sorted(set(pred.tolist())) == [0, 1, 2]
    if names is not None:
        write_metadata(base, {"classes": json.dumps(names)})
    path = tmp_path / "fashion.onnx"
    onnx.save(base, path)
    return path, px, pred


def folders(root: Path, px: np.ndarray, labels: np.ndarray, keep=(0, 1, 2)) -> Path:
    """train/, val/ and test/ holding the images of the outputs ``keep``, each in the folder
    named after its output (``FOLDERS``); labels are the model's own predictions."""
    chosen = np.isin(labels, keep)
    for split in ("train", "val", "test"):
        save_images(root / split, px[chosen], labels[chosen], FOLDERS)
    return root


def test_tune_matches_folders_to_the_recorded_classes(tmp_path, capsys):
    model, px, pred = named_model(tmp_path)
    data = folders(tmp_path / "data", px, pred)
    alphabetical = np.array([sorted(FOLDERS).index(FOLDERS[c]) for c in pred])
    assert np.mean(alphabetical == pred) < 0.5  # the old numbering mislabels most images
    emit = tmp_path / "out" / "f.anan.onnx"
    result = tune(model, data, grid=ONE, run=QUIET, emit=emit, emit_anyway=True)
    assert result.base_scores["accuracy"] == 1.0 and result.base_scores["f1"] == 1.0
    assert result.info["class_map"]["index"] == [2, 0, 1]  # Bag, T-shirt-top, Trouser
    assert result.info["class_map"]["matched_by"] == "name"
    # the emitted model (and its base) keep the model's names and order
    for path in (emit, emit.with_name("f.base.onnx")):
        assert class_names(read_metadata(path)) == NAMES
    anan = session(onnx.load(emit)).run(None, {"x": as_input(px)})[0]
    assert result.best["accuracy"] == pytest.approx(np.mean(anan.argmax(axis=1) == pred))
    # predict names an image by the model's class of its label
    bag = next((data / "val" / "Bag").iterdir())
    code, out, _ = run_cli(capsys, "predict", tmp_path / "fashion.onnx", bag)
    assert code == 0 and "label=2\tclass=Bag" in out


def test_a_subset_of_a_multiclass_models_classes(tmp_path, capsys):
    model, px, pred = named_model(tmp_path)
    data = folders(tmp_path / "data", px, pred, keep=(0, 2))  # T-shirt-top/ and Bag/ only
    out = tmp_path / "o"
    code, stdout, stderr = run_cli(capsys, "tune", model, data, "--k", "2,3", "--mu", "1",
                                   "--a", "1.5,4", "--b", "0.3", "--no-progress",
                                   "-o", out, "--emit", tmp_path / "s.anan.onnx",
                                   "--emit-anyway")  # fmt: skip
    assert code == 0, stderr
    assert "2 of the model's 3 classes present: scores over those (absent: [Trouser])" in stdout
    record = json.loads((out / "best.json").read_text())
    assert record["class_map"]["subset"] and record["class_map"]["present"] == ["T-shirt/top",
                                                                              "Bag"]  # fmt: skip
    assert record["base_scores"]["f1"] == 1.0  # macro F1 over the present classes
    # ANAN's F1 is the macro F1 over T-shirt/top and Bag of the emitted model's predictions
    y = pred[np.isin(pred, (0, 2))]
    x = as_input(px[np.isin(pred, (0, 2))])
    anan = session(onnx.load(tmp_path / "s.anan.onnx")).run(None, {"x": x})[0].argmax(axis=1)
    assert record["scores"]["f1"] == pytest.approx(
        f1_score(y, anan, labels=[0, 2], average="macro", zero_division=0)
    )
    # evaluate scores the same subset and says so
    ev = evaluate(model, data, grid=ONE, run=QUIET)
    fold = ev.folds[0]
    assert fold["classes"]["subset"] and fold["scores"]["base"]["f1"] == 1.0
    expected = "- classes: matched by name (Bag=2, T-shirt-top=0); 2 of the model's 3 classes"
    assert expected in ev.markdown()


def test_unknown_classes_are_refused_by_tune_and_evaluate(tmp_path, capsys):
    model = tmp_path / "cd.onnx"
    base = build_cnn(VARIANTS["plain"], head="sigmoid", seed=1)
    write_metadata(base, {"classes": json.dumps(["cats", "dogs"])})
    onnx.save(base, model)
    data = tmp_path / "data"
    for c, name in enumerate(["dogs", "kittens"]):
        save_images(data, pixels(6, c), np.zeros(6, np.int64), [name])
    for command in ("tune", "evaluate"):
        code, stdout, stderr = run_cli(capsys, command, model, data, "--k", "2", "--mu", "1",
                                       "--a", "1.5", "--b", "0.3", "--no-progress",
                                       "-o", tmp_path / command)  # fmt: skip
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1, stderr
        assert "classes [kittens] are not among the model's classes ([cats, dogs])" in lines[0]
        assert not (tmp_path / command).exists()


def test_unnamed_model_order_is_printed_and_index_folders_match(tmp_path, capsys):
    model, px, pred = named_model(tmp_path, names=None)
    data = tmp_path / "data"
    chosen = np.isin(pred, (0, 2))
    for split in ("train", "val", "test"):
        save_images(data / split, px[chosen], pred[chosen], ["0", "1", "2"])
    result = tune(model, data, grid=ONE, run=QUIET)
    assert result.info["class_map"]["matched_by"] == "index" and result.base_scores["f1"] == 1.0
    assert result.info["classes"] is None  # nothing to record: the folders name no classes
    named = tmp_path / "named"
    for split in ("train", "val", "test"):
        save_images(named / split, px[chosen], pred[chosen], ["cat", "", "dog"])
    code, _, stderr = run_cli(capsys, "tune", model, named, "--k", "2", "--no-progress",
                              "-o", tmp_path / "o")  # fmt: skip
    assert code == 2 and "records no class names and has 3 classes" in stderr
    full = tmp_path / "full"
    for split in ("train", "val", "test"):
        save_images(full / split, px, pred, ["a", "b", "c"])
    code, stdout, _ = run_cli(capsys, "tune", model, full, "--k", "2", "--mu", "1", "--a", "1.5",
                              "--b", "0.3", "--no-progress", "-o", tmp_path / "o")  # fmt: skip
    assert code == 0
    assert "the model records no class names: the data set's classes in name order are taken "\
        "as its outputs (a=0, b=1, c=2)" in " ".join(stdout.split())  # fmt: skip


def test_npz_label_names_are_matched_too(tmp_path):
    model, px, pred = named_model(tmp_path)
    stored = ["Trouser", "Bag", "T-shirt/top"]  # the archive's own numbering
    labels = np.array([stored.index(NAMES[c]) for c in pred])
    images = px.transpose(0, 2, 3, 1)
    arrays = {f"{s}_{k}": v for s in ("train", "val", "test")
              for k, v in (("images", images), ("labels", labels))}  # fmt: skip
    np.savez(tmp_path / "f.npz", classes=np.array(stored), **arrays)
    result = tune(model, tmp_path / "f.npz", grid=ONE, run=QUIET)
    assert result.info["class_map"]["index"] == [1, 2, 0] and result.base_scores["f1"] == 1.0


# --- small tuning sets ---------------------------------------------------------------------


def test_small_sets_warn_with_a_bootstrap_interval(tmp_path, capsys, monkeypatch):
    model, px, pred = named_model(tmp_path)
    data = folders(tmp_path / "data", px, pred)
    out = tmp_path / "o"
    code, stdout, stderr = run_cli(capsys, "tune", model, data, "--k", "2,3", "--mu", "1",
                                   "--a", "1.5,4", "--b", "0.3", "--no-progress",
                                   "-o", out)  # fmt: skip
    assert code == 0
    assert "anan-onnx: warning: only 36 val images: f1 ANAN" in stderr
    assert "95 % bootstrap intervals" in stderr and "only 36 val images" in stdout
    record = json.loads((out / "best.json").read_text())
    ci = record["interval"]
    assert ci["metric"] == "f1" and ci["n_images"] == 36
    assert ci["base"] == [1.0, 1.0]  # the base CNN is right on every image of every resample
    # the percentile bootstrap, recomputed here: same draws (seed 0), F1 by scikit-learn
    result = tune(model, data, grid=GRID, run=QUIET)  # same search, as objects
    best = result.best
    params = {n: best[n] for n in ("k", "mu", "a", "b")}
    assert params == {n: record["params"][n] for n in params}
    from anan_onnx import AnanParams, convert_model

    anan_model = convert_model(onnx.load(model), AnanParams(**params)).anan
    x = as_input(px)
    anan = session(anan_model).run(None, {"x": x})[0].argmax(axis=1)
    # the loader's order: class folders by name (Bag, T-shirt-top, Trouser), then files
    order = np.concatenate([np.flatnonzero(pred == c) for c in (2, 0, 1)])
    y, anan = pred[order], anan[order]
    draws = np.random.default_rng(0).integers(0, 36, size=(1000, 36))

    def f1(truth: np.ndarray, guess: np.ndarray) -> float:
        return f1_score(truth, guess, labels=[0, 1, 2], average="macro", zero_division=0)

    values = np.array([f1(y[i], anan[i]) for i in draws])
    base = np.array([f1(y[i], y[i]) for i in draws])  # < 1 where a draw misses a class
    np.testing.assert_allclose(ci["anan"], np.percentile(values, [2.5, 97.5]), atol=1e-12)
    np.testing.assert_allclose(ci["difference"], np.percentile(values - base, [2.5, 97.5]),
                               atol=1e-12)  # fmt: skip
    # a set of SMALL_SAMPLE images or more: no interval, no warning
    monkeypatch.setattr(tune_module, "SMALL_SAMPLE", 36)
    code, stdout, stderr = run_cli(capsys, "tune", model, data, "--k", "2", "--mu", "1",
                                   "--a", "1.5", "--b", "0.3", "--no-progress",
                                   "-o", out)  # fmt: skip
    assert code == 0 and "only 36" not in stderr + stdout
    assert json.loads((out / "best.json").read_text())["interval"] is None
