"""Tests of anan_onnx.evaluation.scores against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.scores import (
    binary_scores,
    multiclass_scores,
    scores,
    select_metric_value,
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
