"""``evaluate``: base vs control vs ANAN per fold, paired Wilcoxon over folds, the report,
the figure, training.json folds, params files, class-shift flags and refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from fixtures.evaluation_data import (
    N_FOLDS,
    QUIET,
    as_input,
    centred_cnn,
    make_data,
    make_folds,
    pixels,
    run_cli,
    save_images,
    session,
)

from anan_onnx import AnanParams, convert_model
from anan_onnx.evaluation.control import tune_threshold
from anan_onnx.evaluation.evaluate import evaluate
from anan_onnx.evaluation.grid import Grid
from anan_onnx.evaluation.model_files import find_models
from anan_onnx.evaluation.scores import binary_scores
from anan_onnx.evaluation.statistics import wilcoxon_paired
from anan_onnx.options import SplitOptions

GRID = Grid(k=(2, 3), mu=(1, 2), a=(1.2, 3.0), b=(0.3, 0.8))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data, x = make_data(root / "data")
    folds = make_folds(root / "folds", x)
    return root, data, folds


@pytest.fixture(scope="module")
def cli_run(setup):
    """One CLI evaluation of 5 fold models under both rules (shared by several tests)."""
    root, data, folds = setup
    out = root / "report"
    code = _main(
        "evaluate", folds, data, "--k", "2,3", "--mu", "1,2", "--a", "1.2,3", "--b", "0.3,0.8",
        "--rules", "multiplicative,additive", "-o", out, "--title", "Synthetic", "--json",
        "--no-progress",
    )  # fmt: skip
    assert code == 0
    return out, json.loads((out / "evaluation.json").read_text())


def _main(*argv) -> int:
    from anan_onnx.cli import main

    return main([str(a) for a in argv])


def test_markdown_png_and_json_are_written(cli_run):
    out, result = cli_run
    text = (out / "evaluation.md").read_text()
    assert text.startswith("# Synthetic")
    for needle in ("## Test scores (mean ± std over 5 models)", "| Positive rate |",
                   "| Balanced acc. |", "| MCC |", "## Paired Wilcoxon signed-rank tests",
                   "smallest possible two-sided p is 0.0625", "![base vs ANAN vs control]"
                   "(evaluation.png)", "ANAN (multiplicative) vs CNN",
                   "ANAN (additive) vs control (threshold)"):  # fmt: skip
        assert needle in text, needle
    png = (out / "evaluation.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert set(result["labels"]) == {"base", "control", "multiplicative", "additive"}
    assert len(result["folds"]) == N_FOLDS


def test_wilcoxon_over_folds_matches_a_direct_computation(cli_run):
    _, result = cli_run
    folds = result["folds"]
    tests = {(t["model"], t["reference"], t["metric"]): t for t in result["tests"]}
    for rule in ("multiplicative", "additive"):
        for metric in ("f1", "accuracy", "loss", "mcc", "balanced_accuracy", "positive_rate"):
            base = [f["scores"]["base"][metric] for f in folds]
            anan = [f["scores"][rule][metric] for f in folds]
            expected = wilcoxon_paired(base, anan)
            t = tests[(rule, "base", metric)]
            assert t["n"] == N_FOLDS and t["p_value"] == pytest.approx(expected["p_value"])
            assert t["mean_difference"] == pytest.approx(np.mean(np.subtract(anan, base)))
            assert t["p_value"] >= 0.0625  # n = 5: two-sided exact minimum
    assert ("control", "base", "f1") in tests


def test_control_is_the_threshold_tuned_on_validation(setup, cli_run):
    _, data, folds = setup
    _, result = cli_run
    from anan_onnx import InputSpec, load_splits
    from anan_onnx.evaluation.tune import load_model
    from anan_onnx.metadata import read_metadata

    fold = result["folds"][2]
    base = load_model(folds / "fold3.onnx")
    splits = load_splits(data, InputSpec.from_metadata(read_metadata(base)), progress=False)
    p_val = session(base).run(None, {"x": splits.val.images})[0]
    p_test = session(base).run(None, {"x": splits.test.images})[0]
    t = tune_threshold(splits.val.labels, p_val, "f1")
    assert fold["control"] == {"kind": "threshold", "threshold": t, "metric": "f1"}
    expected = binary_scores(splits.test.labels, p_test, t)
    assert fold["scores"]["control"]["f1"] == pytest.approx(expected["f1"])
    assert fold["n_tune"] == len(splits.val.labels) and fold["n_test"] == len(splits.test.labels)
    # the ANAN test scores are those of the exported fixed-parameter model
    params = AnanParams(**fold["params"]["additive"])
    anan = convert_model(base, params).anan
    p_anan = session(anan).run(None, {"x": splits.test.images})[0]
    assert fold["scores"]["additive"]["f1"] == pytest.approx(
        binary_scores(splits.test.labels, p_anan)["f1"]
    )


def test_training_json_gives_each_fold_its_own_validation(setup, tmp_path):
    root, data, _ = setup
    px = pixels(30, 5)
    x = as_input(px)
    labels = np.arange(30) % 2
    save_images(tmp_path / "data" / "train", px[:20], labels[:20], ["neg", "pos"])
    save_images(tmp_path / "data" / "test", px[20:], labels[20:], ["neg", "pos"])
    train_files = [f"train/{['neg', 'pos'][y]}/img{i:03d}.png" for i, y in enumerate(labels[:20])]
    test_files = [f"test/{['neg', 'pos'][y]}/img{i:03d}.png" for i, y in enumerate(labels[20:])]
    folder = make_folds(tmp_path / "folds", x, n=3)
    record = {
        "classes": ["neg", "pos"],
        "data_root": str(tmp_path / "data"),
        "train_files": train_files,
        "train_labels": labels[:20].tolist(),
        "test_files": test_files,
        "test_labels": labels[20:].tolist(),
        "folds": [
            {"fold": i, "model": f"fold{i}.keras", "val_indices": list(range(i, 20, 3))}
            for i in (1, 2, 3)
        ],
    }
    (folder / "training.json").write_text(json.dumps(record))
    ev = evaluate(folder, grid=Grid(k=(2,), mu=(1,), a=(1.5,), b=(0.3,)), run=QUIET)
    assert [f["n_tune"] for f in ev.folds] == [len(range(i, 20, 3)) for i in (1, 2, 3)]
    assert all("training.json" in f["tune_source"] for f in ev.folds)
    assert all(f["n_test"] == 10 for f in ev.folds)


def test_params_file_skips_tuning_and_single_model_has_no_test(setup, tmp_path, capsys):
    _, data, folds = setup
    params = tmp_path / "best.json"
    params.write_text(json.dumps({"params": {"k": 3, "mu": 1, "a": 1.2, "b": 0.3}}))
    code, stdout, stderr = run_cli(capsys, "evaluate", folds / "fold1.onnx", data,
                                   "--params", params, "--no-progress")  # fmt: skip
    assert code == 0, stderr
    assert "parameters given (--params)" in stdout
    assert "One model: no paired test" in stdout
    # the per-model line is output, not an error-like "anan-onnx: ..." line on stderr
    assert stdout.startswith("fold1: f1 CNN ") and "fold1" not in stderr
    code, stdout, stderr = run_cli(capsys, "evaluate", folds / "fold1.onnx", data,
                                   "--params", params, "--no-progress", "--json")  # fmt: skip
    assert code == 0 and json.loads(stdout) and stderr.startswith("fold1: f1 CNN ")
    ev = evaluate(folds / "fold1.onnx", data, params=[params], run=QUIET)
    assert ev.tuned_on == "params" and ev.folds[0]["tuning"] == {}
    assert ev.folds[0]["params"]["multiplicative"]["k"] == 3


def test_class_shift_is_flagged(setup):
    _, data, folds = setup
    strong = AnanParams(k=4, mu=1, a=6.0, b=0.9)  # excited kernels ×1296: one class wins
    ev = evaluate(folds, data, params=[strong], run=QUIET)
    shift = abs(
        np.mean(ev.values("multiplicative", "positive_rate") - ev.values("base", "positive_rate"))
    )
    assert shift > 0.10
    assert any("moves by" in f and "balanced accuracy and MCC" in f for f in ev.flags())
    gentle = AnanParams(k=2, mu=2, a=1.0001, b=0.0001)
    quiet = evaluate(folds, data, params=[gentle], run=QUIET)
    assert not any("moves by" in f and f.startswith("ANAN") for f in quiet.flags())
    assert "## Flags" in ev.markdown()


def test_tune_on_test_warns_and_multiclass_works(tmp_path):
    px = pixels(45, 9)
    x = as_input(px)
    reference = centred_cnn(x, 9, classes=3)
    labels = session(reference).run(None, {"x": x})[0].argmax(axis=1)
    save_images(tmp_path / "data", px, labels, ["a", "b", "c"])
    folder = tmp_path / "folds"
    folder.mkdir()
    for i in (1, 2):
        onnx.save(centred_cnn(x, 30 + i, classes=3), folder / f"fold{i}.onnx")
    grid = Grid(k=(2,), mu=(1,), a=(1.5, 3.0), b=(0.3,))
    with pytest.warns(UserWarning, match="tuning on the test split"):
        ev = evaluate(folder, tmp_path / "data", grid=grid, tune_on="test", run=QUIET,
                      split=SplitOptions(val_fraction=0.3))  # fmt: skip
    scores = ev.folds[0]["scores"]
    assert {"predicted_rate_0", "predicted_rate_2"} <= set(scores["base"])
    assert ev.folds[0]["control"]["kind"] == "class_weights"
    assert len(ev.folds[0]["control"]["weights"]) == 3
    assert ev.tuned_on == "test" and "**warning**" in ev.markdown()
    assert all(math.isfinite(t["p_value"]) for t in ev.tests())


@pytest.mark.parametrize(
    "case, message",
    [
        ("anan", "already an ANAN model"),
        ("empty_folder", "holds no model files"),
        ("bad_params", "is not readable JSON"),
        ("params_without_k", "has no k, mu, a, b"),
        ("no_data", "no data set given and no training.json"),
        ("rules", "--rules: 'both' is not one of"),
    ],
)
def test_evaluate_refusals(setup, tmp_path, capsys, case, message):
    _, data, folds = setup
    args: list[object] = ["evaluate", folds / "fold1.onnx", data, "--k", "2", "--no-progress"]
    if case == "anan":
        anan = tmp_path / "m.anan.onnx"
        onnx.save(convert_model(onnx.load(folds / "fold1.onnx"), AnanParams()).anan, anan)
        args[1] = tmp_path / "x.onnx"
        anan.rename(args[1])
    elif case == "empty_folder":
        args[1] = tmp_path
    elif case == "bad_params":
        (tmp_path / "p.json").write_text("{not json")
        args += ["--params", tmp_path / "p.json"]
    elif case == "params_without_k":
        (tmp_path / "p.json").write_text(json.dumps({"params": {"a": 1.5}}))
        args += ["--params", tmp_path / "p.json"]
    elif case == "no_data":
        args.pop(2)
    elif case == "rules":
        args += ["--rules", "both"]
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 2, stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anan-onnx: error: ") and message in lines[0]


def test_find_models_prefers_onnx_and_fold_order(tmp_path):
    for name in ("fold10.onnx", "fold2.keras", "fold2.onnx", "fold1.h5", "x.anan.onnx"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_models(tmp_path)] == ["fold1.h5", "fold2.onnx", "fold10.onnx"]


def test_evaluate_takes_convert_preprocessing_options(setup, tmp_path, capsys):
    """--channel-order/--mean/--std reach the model as convert's do: the base CNN is fed
    other inputs, so its scores change."""
    _, data, folds = setup
    params = tmp_path / "best.json"
    params.write_text(json.dumps({"params": {"k": 3, "mu": 1, "a": 1.2, "b": 0.3}}))
    losses = []
    for extra in ([], ["--channel-order", "BGR"], ["--mean", "127.5", "--std", "127.5"]):
        argv = ["evaluate", folds / "fold1.onnx", data, "--params", params, "--json", *extra]
        code, stdout, stderr = run_cli(capsys, *argv, "--no-progress")
        assert code == 0, stderr
        losses.append(json.loads(stdout)["folds"][0]["scores"]["base"]["loss"])
    assert len(set(losses)) == 3
