"""The control: the base CNN with only its decision rule tuned on validation images.

It shows how much of an ANAN gain a free decision-threshold change would give too: the
threshold of a sigmoid output, or class weights on a softmax output, tuned on the same
images as ANAN's parameters and scored on the test images.

Example:
    >>> tune_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.scores import (
    binary_scores,
    class_labels,
    multiclass_scores,
    one_column,
    present_classes,
    probabilities,
)

__all__ = ["THRESHOLD_METRICS", "control", "tune_threshold"]

#: Metrics a decision rule changes (loss and AUC do not depend on it).
THRESHOLD_METRICS: tuple[str, ...] = ("f1", "accuracy", "balanced_accuracy", "mcc")


def tune_threshold(y_true: object, prob: object, metric: str = "f1") -> float:
    """The control baseline: the base CNN's decision threshold tuned on a validation split.

    Only ``prob > t`` changes with ``t``, so candidates are one threshold per gap between
    consecutive distinct probabilities (including 0 and 1 as ends): the gap's midpoint, or
    0.5 itself when 0.5 falls in the gap. The best value of ``metric`` wins; ties go to the
    threshold closest to 0.5 (then the lower one), so the default is kept unless it loses.

    Args:
        y_true: labels 0/1 of the validation images.
        prob: predicted probability of class 1.
        metric: ``"f1"``, ``"accuracy"``, ``"balanced_accuracy"`` or ``"mcc"``.

    Returns:
        The threshold, to pass to :func:`binary_scores` on the test split.

    Example:
        >>> tune_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
        0.25
    """
    if metric not in THRESHOLD_METRICS:
        raise AnanError(
            f"cannot tune the threshold on {metric!r} (loss and AUC do not depend on it): use "
            f"one of {', '.join(THRESHOLD_METRICS)}"
        )
    y = class_labels(y_true, 2)
    p = probabilities(one_column(prob, "tune_threshold"), len(y))
    edges = np.unique(np.concatenate([[0.0], p, [1.0]]))
    lo, hi = edges[:-1], edges[1:]
    candidates = np.where((lo <= 0.5) & (hi > 0.5), 0.5, (lo + hi) / 2)
    values = _metric_at(y, p, candidates, metric)
    best = np.flatnonzero(values >= values.max() - 1e-12)
    order = np.lexsort((candidates[best], np.abs(candidates[best] - 0.5)))
    return float(candidates[best[order[0]]])


def _metric_at(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of ``p > t`` for each threshold, vectorised over thresholds."""
    pos = y == 1
    # For each threshold t: predicted positive = p > t. Counting with searchsorted on the
    # sorted probabilities of each class avoids an (n x thresholds) matrix.
    p_pos, p_neg = np.sort(p[pos]), np.sort(p[~pos])
    tp: np.ndarray = len(p_pos) - np.searchsorted(p_pos, thresholds, side="right")
    fp: np.ndarray = len(p_neg) - np.searchsorted(p_neg, thresholds, side="right")
    fn, tn = len(p_pos) - tp, len(p_neg) - fp
    tp, fp, fn, tn = (a.astype(np.float64) for a in (tp, fp, fn, tn))
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            return (tp + tn) / len(y)
        if metric == "f1":
            return np.nan_to_num(2 * tp / (2 * tp + fp + fn))
        if metric == "balanced_accuracy":
            # As sklearn: with a single class present, the mean of the defined recalls.
            recalls = [tp / (tp + fn)] if len(p_pos) else []
            recalls += [tn / (tn + fp)] if len(p_neg) else []
            return np.mean(recalls, axis=0)
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return np.nan_to_num((tp * tn - fp * fn) / denominator)


def control(
    y_val: np.ndarray,
    p_val: np.ndarray,
    p_test: np.ndarray,
    y_test: np.ndarray,
    metric: str,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Tunes the base CNN's decision rule on validation data; returns (rule, test scores).

    A sigmoid output gets a threshold (:func:`tune_threshold`), a two-class softmax the
    same threshold on P(class 1) as class weights ``(t, 1 - t)``, a wider softmax per-class
    weights on its probabilities. ``metric`` is the selection metric; loss and AUC, which
    no decision rule changes, fall back to F1. Macro F1 averages, in each split, over the
    classes that split has images of (:func:`~anan_onnx.evaluation.scores.present_classes`).
    """
    chosen = metric if metric in THRESHOLD_METRICS else "f1"
    if p_val.ndim == 1 or p_val.shape[1] == 1:
        t = tune_threshold(y_val, p_val.reshape(-1), chosen)
        rule = {"kind": "threshold", "threshold": t, "metric": chosen}
        return rule, binary_scores(y_test, p_test.reshape(-1), t)
    if p_val.shape[1] == 2:  # threshold on P(class 1), as class weights (t, 1 - t)
        t = tune_threshold(y_val, p_val[:, 1], chosen)
        weights = np.array([t, 1.0 - t])
    else:
        weights = _class_weights(y_val, p_val, chosen, present_classes(y_val, p_val))
    rule = {"kind": "class_weights", "weights": weights.tolist(), "metric": chosen}
    q = p_test * weights
    return rule, multiclass_scores(
        y_test, q / q.sum(axis=1, keepdims=True), present_classes(y_test, p_test)
    )


def _class_weights(
    y: np.ndarray, p: np.ndarray, metric: str, classes: Sequence[int] | None
) -> np.ndarray:
    """Per-class weights on the probabilities (arg-max of p·w), by coordinate ascent."""
    n_classes = p.shape[1]
    scored = np.zeros(n_classes, bool)
    scored[list(range(n_classes)) if classes is None else list(classes)] = True
    candidates = np.exp(np.linspace(-3, 3, 25))
    weights = np.ones(n_classes)
    best = _argmax_metric(y, (p * weights).argmax(axis=1), scored, metric)
    for _ in range(3):
        improved = False
        for c in range(n_classes):
            for w in candidates:
                trial = weights.copy()
                trial[c] = w
                value = _argmax_metric(y, (p * trial).argmax(axis=1), scored, metric)
                if value > best + 1e-12:
                    best, weights, improved = value, trial, True
        if not improved:
            break
    return weights / weights.max()


def _argmax_metric(y: np.ndarray, pred: np.ndarray, scored: np.ndarray, metric: str) -> float:
    """Accuracy, macro F1 (over the ``scored`` classes), balanced accuracy or MCC from a
    confusion matrix (fast)."""
    n = len(scored)
    cm = np.bincount(y * n + pred, minlength=n * n).reshape(n, n).astype(np.float64)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            return float(tp.sum() / cm.sum())
        if metric == "f1":
            return float(np.nan_to_num(2 * tp / (support + predicted))[scored].mean())
        if metric == "balanced_accuracy":
            present = support > 0
            return float((tp[present] / support[present]).mean())
        total = cm.sum()
        cov = tp.sum() * total - predicted @ support
        denominator = math.sqrt((total**2 - predicted @ predicted) * (total**2 - support @ support))
        return float(cov / denominator) if denominator else 0.0
