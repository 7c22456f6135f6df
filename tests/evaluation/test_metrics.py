"""Tests of anan_onnx.evaluation.metrics against hand-computed values."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.metrics import (
    bar_figure,
    binary_scores,
    markdown_table,
    multiclass_scores,
    scores,
    select_metric_value,
    significance_stars,
    tune_threshold,
    wilcoxon_paired,
)

# Six images; at threshold 0.5 the predictions are [1, 1, 0, 1, 0, 0]:
# TP = 2 (0.9, 0.8), FN = 1 (0.3), FP = 1 (0.6), TN = 2 (0.2, 0.1).
Y6 = [1, 1, 1, 0, 0, 0]
P6 = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1]


def test_binary_scores_hand_computed():
    s = binary_scores(Y6, P6)
    assert s["accuracy"] == pytest.approx(4 / 6)  # (TP + TN) / n = (2 + 2) / 6
    assert s["f1"] == pytest.approx(2 / 3)  # 2TP / (2TP + FP + FN) = 4 / 6
    assert s["balanced_accuracy"] == pytest.approx(2 / 3)  # (TPR 2/3 + TNR 2/3) / 2
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / sqrt(3^4) = 1/3
    assert s["mcc"] == pytest.approx(1 / 3)
    # AUC: of the 9 (positive, negative) pairs, 0.9 and 0.8 beat all 3 negatives and 0.3
    # beats 0.2 and 0.1: 8 / 9.
    assert s["roc_auc"] == pytest.approx(8 / 9)
    # BCE = -(ln .9 + ln .8 + ln .3 + ln(1-.6) + ln(1-.2) + ln(1-.1)) / 6
    bce = -(math.log(0.9) + math.log(0.8) + math.log(0.3) + math.log(0.4) + math.log(0.8)
            + math.log(0.9)) / 6  # fmt: skip
    assert s["bce"] == pytest.approx(bce) and s["loss"] == s["bce"]
    assert s["positive_rate"] == pytest.approx(0.5)  # 3 of 6 predicted positive
    assert s["threshold"] == 0.5 and s["n"] == 6


def test_binary_scores_imbalanced_hand_computed():
    # 8 negatives, 2 positives, everything predicted negative:
    # accuracy = 8/10, F1 = 0 (no TP), balanced accuracy = (0 + 1) / 2, MCC = 0 (undefined → 0).
    y = [0] * 8 + [1] * 2
    s = binary_scores(y, [0.1] * 10)
    assert (s["accuracy"], s["f1"], s["balanced_accuracy"], s["mcc"]) == (0.8, 0.0, 0.5, 0.0)
    assert s["positive_rate"] == 0.0 and s["roc_auc"] == 0.5


def test_binary_scores_threshold_is_strict_and_loss_is_clipped():
    # Keras' rule: positive when prob > threshold, so 0.5 itself is negative.
    assert binary_scores([0, 1], [0.5, 0.5])["positive_rate"] == 0.0
    # A certain, wrong prediction costs -ln(1e-7) = 16.118 (cf. the paper's 16.127).
    s = binary_scores([1, 0], [0.0, 1.0])
    assert s["bce"] == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert s["accuracy"] == 0.0


def test_binary_scores_one_class_and_column_input():
    s = binary_scores(np.array([[1], [1]]), np.array([[0.7], [0.2]]))
    assert math.isnan(s["roc_auc"])
    assert s["accuracy"] == 0.5 and s["balanced_accuracy"] == 0.5


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], r"labels must be in 0\.\.1"),
        ([0, 1], [0.1], "got 1 predictions for 2 labels"),
        ([0, 1], [0.1, np.nan], "NaN or Inf"),
        ([0, 1], [-2.0, 3.0], "not probabilities: the model must end with sigmoid or softmax"),
        ([], [], "non-empty 1-D array"),
        ([0.5, 1], [0.1, 0.2], "class indices"),
        ([0, 1], [[0.1, 0.9], [0.2, 0.8]], "use multiclass_scores"),
    ],
)
def test_binary_scores_input_errors(y, p, message):
    with pytest.raises(AnanError, match=message):
        binary_scores(y, p)


def test_multiclass_scores_hand_computed():
    y = [0, 0, 1, 1, 2, 2]
    probs = [
        [0.7, 0.2, 0.1],  # → 0 correct
        [0.2, 0.5, 0.3],  # → 1 wrong
        [0.1, 0.8, 0.1],  # → 1 correct
        [0.3, 0.6, 0.1],  # → 1 correct
        [0.1, 0.1, 0.8],  # → 2 correct
        [0.6, 0.2, 0.2],  # → 0 wrong
    ]
    s = multiclass_scores(y, probs)
    assert s["accuracy"] == pytest.approx(4 / 6)
    # Recalls: class 0 1/2, class 1 2/2, class 2 1/2 → balanced accuracy = 2/3.
    assert s["balanced_accuracy"] == pytest.approx(2 / 3)
    # Precisions: 0: 1/2 (one of two predicted 0), 1: 2/3, 2: 1/1.
    # F1: 0: 2·(1/2·1/2)/(1) = 1/2; 1: 2·(2/3·1)/(5/3) = 4/5; 2: 2·(1·1/2)/(3/2) = 2/3.
    assert s["f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    ce = -(math.log(0.7) + math.log(0.2) + math.log(0.8) + math.log(0.6) + math.log(0.8)
           + math.log(0.2)) / 6  # fmt: skip
    assert s["cross_entropy"] == pytest.approx(ce) and s["loss"] == s["cross_entropy"]
    assert [s[f"predicted_rate_{c}"] for c in range(3)] == pytest.approx([2 / 6, 3 / 6, 1 / 6])
    from sklearn.metrics import matthews_corrcoef, roc_auc_score

    assert s["mcc"] == pytest.approx(matthews_corrcoef(y, [0, 1, 1, 1, 2, 0]))
    assert s["roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert "positive_rate" not in s


def test_multiclass_auc_is_nan_when_a_class_is_missing_and_rows_are_renormalised():
    s = multiclass_scores([0, 1], [[0.5, 0.3, 0.2], [0.1, 0.5, 0.4]])
    assert math.isnan(s["roc_auc"]) and s["accuracy"] == 1.0
    doubled = multiclass_scores([0, 1], [[1.0, 0.6, 0.4], [0.2, 1.0, 0.8]])
    assert doubled["loss"] == pytest.approx(s["loss"])


def test_scores_dispatches_on_shape():
    assert scores(Y6, P6) == binary_scores(Y6, P6)
    assert scores(Y6, np.array(P6)[:, None], threshold=0.25) == binary_scores(Y6, P6, 0.25)
    two = np.stack([1 - np.array(P6), P6], axis=1)
    s = scores(Y6, two)
    assert "cross_entropy" in s and s["accuracy"] == pytest.approx(4 / 6)
    assert s["positive_rate"] == pytest.approx(0.5) and s["roc_auc"] == pytest.approx(8 / 9)
    assert s["loss"] == pytest.approx(binary_scores(Y6, P6)["loss"])
    with pytest.raises(AnanError, match=r"model output has shape \(6, 2, 1\)"):
        scores(Y6, two[..., None])
    with pytest.raises(AnanError, match="labels must be in 0..1"):
        scores([0, 1, 2], [[0.5, 0.5]] * 3)


# --- threshold control ----------------------------------------------------------------------


def test_tune_threshold_finds_the_separating_gap():
    # Perfectly separable between 0.30 and 0.35, but not at 0.5: best F1 = 1 at 0.325.
    y = [0, 0, 0, 1, 1, 1]
    p = [0.10, 0.20, 0.30, 0.35, 0.40, 0.45]
    t = tune_threshold(y, p)
    assert t == pytest.approx(0.325)
    assert binary_scores(y, p, t)["f1"] == 1.0
    assert binary_scores(y, p)["f1"] == 0.0  # the untuned CNN predicts no positive


def test_tune_threshold_keeps_half_when_it_is_already_best():
    assert tune_threshold([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.9]) == 0.5
    assert tune_threshold([0, 1], [0.5, 0.6]) == 0.5  # 0.5 itself sits in the best gap
    # Ties elsewhere go to the threshold closest to 0.5: both 0.15 and 0.85 misclassify one.
    assert tune_threshold([1, 0, 1], [0.1, 0.2, 0.9], metric="accuracy") == 0.5


def test_tune_threshold_can_predict_all_positive():
    # A useless ranking: predicting everything positive gives the best F1 (2·3/(2·3+3) = 2/3).
    y = [1, 0, 1, 0, 1, 0]
    p = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    t = tune_threshold(y, p)
    assert t == pytest.approx(0.05)
    assert binary_scores(y, p, t)["f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("metric", ["f1", "accuracy", "balanced_accuracy", "mcc"])
def test_tune_threshold_is_optimal_against_a_brute_force(metric):
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(0, 2, 40)
        p = np.round(np.clip(0.3 * y + rng.random(40) * 0.7, 0, 1), 2)  # ties included
        t = tune_threshold(y, p, metric=metric)
        grid = np.arange(-0.005, 1.0, 0.01)  # one threshold in every gap of the 0.01 grid
        fn = {
            "f1": lambda a, b: skm.f1_score(a, b, zero_division=0),
            "accuracy": skm.accuracy_score,
            "balanced_accuracy": skm.balanced_accuracy_score,
            "mcc": skm.matthews_corrcoef,
        }[metric]
        best = max(fn(y, (p > g).astype(int)) for g in grid)
        got = binary_scores(y, p, t)[metric]
        assert got == pytest.approx(best)
        assert got >= binary_scores(y, p)[metric] - 1e-12


def test_tune_threshold_refuses_threshold_free_metrics():
    with pytest.raises(AnanError, match="loss and AUC do not depend on it"):
        tune_threshold([0, 1], [0.2, 0.8], metric="loss")


def test_select_metric_value_is_higher_is_better():
    s = binary_scores(Y6, P6)
    assert select_metric_value(s, "f1") == s["f1"]
    assert select_metric_value(s, "accuracy") == s["accuracy"]
    assert select_metric_value(s, "auc") == s["roc_auc"]
    assert select_metric_value(s, "loss") == -s["loss"]
    with pytest.raises(AnanError, match="metric must be one of f1, accuracy, loss, auc"):
        select_metric_value(s, "precision")
    with pytest.raises(AnanError, match="the scores have no 'mcc'"):
        select_metric_value({"f1": 1.0}, "mcc")


# --- statistics -----------------------------------------------------------------------------


def test_wilcoxon_all_positive_six():
    # n = 6, all differences positive: W- = 0; under H0 each of the 2^6 = 64 sign patterns is
    # equally likely, and only "all +" and "all -" are as extreme: p = 2/64 = 0.03125.
    r = wilcoxon_paired([0.5] * 6, [0.6, 0.7, 0.55, 0.8, 0.9, 0.65])
    assert r["p_value"] == pytest.approx(2 / 64)
    assert r["stars"] == "*" and r["statistic"] == 0.0 and r["n"] == 6
    assert r["median_difference"] > 0


def test_wilcoxon_all_positive_eight_gives_two_stars():
    r = wilcoxon_paired(list(range(8)), [i + 1 + i / 10 for i in range(8)])
    assert r["p_value"] == pytest.approx(2 / 256)  # 0.0078 < 0.01
    assert r["stars"] == "**"


def test_wilcoxon_mixed_signs_hand_computed():
    # Differences 1, 2, 3, -4, 5, 6: ranks 1..6, W- = 4 (W+ = 17), statistic = min = 4.
    # Subsets of {1..6} with rank sum <= 4: {}, {1}, {2}, {3}, {1,2}, {4}, {1,3} = 7,
    # so p = 2 · 7/64 = 0.21875.
    r = wilcoxon_paired([0] * 6, [1, 2, 3, -4, 5, 6])
    assert r["statistic"] == 4.0
    assert r["p_value"] == pytest.approx(14 / 64)
    assert r["stars"] == ""


def test_wilcoxon_zero_differences():
    r = wilcoxon_paired([0.7, 0.8, 0.9], [0.7, 0.8, 0.9])
    assert r["p_value"] == 1.0 and r["stars"] == "" and r["n_nonzero"] == 0
    # Zeros are dropped (zero_method="wilcox"): the 6 non-zero all-positive pairs remain.
    r = wilcoxon_paired([0.5] * 8, [0.5, 0.5, 0.6, 0.7, 0.55, 0.8, 0.9, 0.65])
    assert r["n"] == 8 and r["n_nonzero"] == 6
    assert r["p_value"] == pytest.approx(2 / 64)


def test_wilcoxon_input_errors():
    with pytest.raises(AnanError, match="equally many base and ANAN scores, got 2 and 3"):
        wilcoxon_paired([1, 2], [1, 2, 3])
    with pytest.raises(AnanError, match="NaN or Inf"):
        wilcoxon_paired([1, float("nan")], [1, 2])


def test_significance_stars_boundaries():
    assert [significance_stars(p) for p in (0.001, 0.0099, 0.01, 0.049, 0.05, 0.5)] == [
        "**", "**", "*", "*", "", "",
    ]  # fmt: skip
    assert significance_stars(float("nan")) == ""


# --- reports --------------------------------------------------------------------------------


def test_markdown_table():
    rows = [
        {"data set": "Fire", "f1": 0.95912, "stars": "*", "n": 200},
        {"data set": "a|b", "f1": float("nan"), "stars": None},
    ]
    assert markdown_table(rows, ["data set", "f1", "stars", "n"]) == (
        "| data set | f1 | stars | n |\n"
        "| --- | --- | --- | --- |\n"
        "| Fire | 0.959 | * | 200 |\n"
        "| a\\|b | nan |  |  |"
    )
    assert markdown_table(rows[:1], ["f1"], digits=1).endswith("| 1.0 |")
    with pytest.raises(AnanError, match="at least one column"):
        markdown_table(rows, [])


def test_bar_figure_writes_a_png_atomically(tmp_path):
    data = {
        "Cats&Dogs": {"F1": (0.613, 0.668, ""), "Accuracy": (0.662, 0.651, "")},
        "Fire": {"F1": (0.959, 0.973, "*", 0.965), "Accuracy": (0.981, 0.987, "*", 0.98)},
    }
    out = bar_figure(tmp_path / "figure5.png", data, title="base vs ANAN")
    assert out == tmp_path / "figure5.png"
    content = out.read_bytes()
    assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["figure5.png"]  # no temporary left
    bar_figure(out, {"RMNIST": {"F1": (0.765, 0.785, "*")}}, metrics=["F1"])  # overwrite
    assert out.read_bytes() != content
    with pytest.raises(AnanError, match="does not exist: create it"):
        bar_figure(tmp_path / "no" / "f.png", data)


def test_modules_import_without_optional_dependencies():
    # `import anan_onnx` must work with numpy, onnx, onnxruntime and pillow only.
    code = (
        "import sys\n"
        "for m in ('scipy', 'sklearn', 'matplotlib', 'tqdm'):\n"
        "    sys.modules[m] = None\n"
        "import anan_onnx.runtime.images, anan_onnx.evaluation.datasets\n"
        "import anan_onnx.evaluation.metrics\n"
        "from anan_onnx.evaluation.metrics import wilcoxon_paired\n"
        "from anan_onnx.errors import AnanError\n"
        "try:\n"
        "    wilcoxon_paired([1, 2], [2, 3])\n"
        "except AnanError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "scipy is needed for evaluation: pip install 'anan-onnx[eval]'" in out.stdout
