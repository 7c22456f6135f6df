"""Tests of anan_onnx.evaluation.control: the threshold tuned on validation images."""

from __future__ import annotations

import numpy as np
import pytest

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.control import tune_threshold
from anan_onnx.evaluation.scores import binary_scores


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
