"""Scores of a classifier's probabilities on labelled images.

Scores follow the paper (Table 3: loss, accuracy, F1) plus balanced accuracy, MCC and ROC
AUC, which stay informative on imbalanced sets such as Fire. The loss is Keras' binary
(or categorical) cross-entropy with probabilities clipped to [1e-7, 1 - 1e-7], so a
confidently wrong prediction costs about 16.1, as in the paper's Cats&Dogs CNN loss.

scikit-learn is imported inside the functions that need it (the ``eval`` extra),
so that ``import anan_onnx`` works without it.

Example:
    >>> s = binary_scores([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1])
    >>> s["accuracy"], s["f1"]
    (0.75, 0.6666666666666666)
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.metric_names import METRICS, metric_key
from anan_onnx.evaluation.optional import need

__all__ = [
    "EPSILON",
    "binary_scores",
    "class_labels",
    "multiclass_scores",
    "one_column",
    "present_classes",
    "probabilities",
    "scores",
    "select_metric_value",
]

#: Probability clipping of the cross-entropy (Keras' ``epsilon()``).
EPSILON = 1e-7


# --- scores ---------------------------------------------------------------------------------


def class_labels(y_true: object, n_classes: int | None = None) -> np.ndarray:
    """Labels as int64 class indices in 0..n_classes-1 (default 2), or a refusal."""
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) == 0:
        raise AnanError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if y.dtype.kind == "f" and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "biu":
        raise AnanError(f"labels must be class indices (integers), got {y.dtype}")
    y = y.astype(np.int64)
    top = 2 if n_classes is None else n_classes
    if y.min() < 0 or y.max() >= top:
        raise AnanError(
            f"labels must be in 0..{top - 1}, got {int(y.min())}..{int(y.max())}: check the "
            "class mapping (binarise with positive=...)"
        )
    return y


def probabilities(prob: object, n: int) -> np.ndarray:
    """``n`` finite probabilities as float64, clipped to [0, 1] (a 1e-6 slack allowed)."""
    p = np.asarray(prob, dtype=np.float64)
    if len(p) != n:
        raise AnanError(f"got {len(p)} predictions for {n} labels: pass one per image")
    if not np.all(np.isfinite(p)):
        raise AnanError("predictions contain NaN or Inf: check the model output")
    if p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise AnanError(
            f"predictions range {p.min():.3g}..{p.max():.3g}, not probabilities: the model must "
            "end with sigmoid or softmax"
        )
    return np.clip(p, 0.0, 1.0)


def one_column(prob: object, what: str) -> np.ndarray:
    """P(class 1) as shape (n,) from (n,) or (n, 1); ``what`` names the caller."""
    p = np.asarray(prob)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1:
        raise AnanError(
            f"{what} needs one probability (of class 1) per image, shape (n,) or (n, 1), got "
            f"{p.shape}: use multiclass_scores for softmax outputs"
        )
    return p


def binary_scores(
    y_true: object, prob: object, threshold: float = 0.5, only: str | None = None
) -> dict[str, float]:
    """Scores of a binary classifier that outputs P(class 1).

    A prediction is positive when ``prob > threshold`` (Keras' ``binary_accuracy`` rule).

    Args:
        y_true: labels 0/1, shape (n,) or (n, 1).
        prob: predicted probability of class 1, shape (n,) or (n, 1).
        threshold: decision threshold.
        only: compute only this score (and ``n``): what a bootstrap needs per resample.

    Returns:
        ``loss`` (= ``bce``, clipped at 1e-7), ``accuracy``, ``f1`` (of class 1; 0 when
        nothing is predicted positive), ``balanced_accuracy``, ``mcc``, ``roc_auc`` (nan
        when only one class is present), ``positive_rate`` (share predicted positive),
        ``threshold`` and ``n``.

    Example:
        >>> binary_scores([0, 1], [0.3, 0.8])["accuracy"]
        1.0
    """
    metrics = need("sklearn.metrics")
    y = class_labels(y_true, 2)
    p = probabilities(one_column(prob, "binary_scores"), len(y))
    pred = (p > threshold).astype(np.int64)
    clipped = np.clip(p, EPSILON, 1 - EPSILON)

    def bce() -> float:
        return float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))

    return _computed(
        {
            "loss": bce,
            "bce": bce,
            "accuracy": lambda: float(np.mean(pred == y)),
            "f1": lambda: float(metrics.f1_score(y, pred, zero_division=0)),
            "balanced_accuracy": lambda: float(metrics.balanced_accuracy_score(y, pred)),
            "mcc": lambda: float(metrics.matthews_corrcoef(y, pred)),
            "roc_auc": lambda: (
                float(metrics.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
            ),
            "positive_rate": lambda: float(pred.mean()),
            "threshold": lambda: float(threshold),
            "n": lambda: len(y),
        },
        only,
    )


def _computed(entries: dict[str, Callable[[], float]], only: str | None) -> dict[str, float]:
    """The scores (only ``only`` and ``n`` when given): computed here, so that a bootstrap
    that needs one score per resample does not pay for all of them."""
    keys = [k for k in entries if only is None or k in (only, "n")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-class inputs warn; the values are defined
        return {k: entries[k]() for k in keys}


def multiclass_scores(
    y_true: object, probs: object, classes: Sequence[int] | None = None, only: str | None = None
) -> dict[str, float]:
    """Scores of a classifier with C >= 2 softmax outputs; the prediction is the argmax.

    Args:
        y_true: class indices, shape (n,).
        probs: probabilities, shape (n, C); rows are renormalised to sum to 1 (as Keras'
            categorical cross-entropy does).
        classes: the classes the data set holds, when only some of the model's (default:
            all C). Macro F1 and AUC average over these; the prediction stays the argmax
            over all C outputs, so predicting an absent class is an error.
        only: compute only this score (and ``n``), as :func:`binary_scores`.

    Returns:
        ``loss`` (= ``cross_entropy``, clipped at 1e-7), ``accuracy``, ``f1`` (macro),
        ``balanced_accuracy``, ``mcc``, ``roc_auc`` (one-vs-rest macro; nan when not every
        class is present), ``predicted_rate_<c>`` per class (and ``positive_rate`` = rate of
        class 1 when C = 2), and ``n``.

    Example:
        >>> multiclass_scores([0, 2], [[0.8, 0.1, 0.1], [0.1, 0.2, 0.7]])["accuracy"]
        1.0
    """
    metrics = need("sklearn.metrics")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise AnanError(f"multiclass_scores needs probabilities of shape (n, C>=2), got {p.shape}")
    n_classes = p.shape[1]
    y = class_labels(y_true, n_classes)
    p = probabilities(p, len(y))
    sums = p.sum(axis=1, keepdims=True)
    p = np.divide(p, sums, out=np.full_like(p, 1.0 / n_classes), where=sums > 0)
    pred = p.argmax(axis=1)
    labels = list(range(n_classes)) if classes is None else sorted(int(c) for c in classes)

    def ce() -> float:
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], EPSILON, 1 - EPSILON))))

    entries: dict[str, Callable[[], float]] = {
        "loss": ce,
        "cross_entropy": ce,
        "accuracy": lambda: float(np.mean(pred == y)),
        "f1": lambda: float(
            metrics.f1_score(y, pred, labels=labels, average="macro", zero_division=0)
        ),
        "balanced_accuracy": lambda: float(metrics.balanced_accuracy_score(y, pred)),
        "mcc": lambda: float(metrics.matthews_corrcoef(y, pred)),
        "roc_auc": lambda: _multiclass_auc(metrics, y, p, labels),
    }
    rates = np.bincount(pred, minlength=n_classes) / len(y)
    for c, rate in enumerate(rates.tolist()):
        entries[f"predicted_rate_{c}"] = functools.partial(float, rate)
    if n_classes == 2:
        entries["positive_rate"] = lambda: float(rates[1])
    entries["n"] = lambda: len(y)
    return _computed(entries, only)


def _multiclass_auc(metrics: Any, y: np.ndarray, p: np.ndarray, labels: list[int]) -> float:
    """One-vs-rest macro AUC over ``labels`` (nan unless each of them is in ``y``)."""
    if sorted(np.unique(y).tolist()) != labels or len(labels) < 2:
        return math.nan  # one-vs-rest needs every class scored present
    try:
        if p.shape[1] == 2:
            return float(metrics.roc_auc_score(y, p[:, 1]))
        if len(labels) == p.shape[1]:
            return float(metrics.roc_auc_score(y, p, multi_class="ovr", average="macro"))
        # a subset of the classes: sklearn's one-vs-rest macro average, over those
        return float(np.mean([metrics.roc_auc_score(y == c, p[:, c]) for c in labels]))
    except ValueError:
        return math.nan


def scores(
    y_true: object,
    probs: object,
    threshold: float = 0.5,
    classes: Sequence[int] | None = None,
    only: str | None = None,
) -> dict[str, float]:
    """Scores for any classifier output, by its shape.

    (n,) or (n, 1): sigmoid output → :func:`binary_scores` with ``threshold``;
    (n, C>=2): softmax → :func:`multiclass_scores` (also for C = 2, where ``threshold`` is
    not used: the prediction is the argmax), averaging over ``classes`` (default: all).
    ``only``: compute just that score (and ``n``).

    Example:
        >>> scores([1, 0], [[0.2, 0.8], [0.6, 0.4]])["accuracy"]
        1.0
    """
    p = np.asarray(probs)
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        return binary_scores(y_true, p.reshape(-1), threshold, only)
    if p.ndim == 2:
        return multiclass_scores(y_true, p, classes, only)
    raise AnanError(f"model output has shape {p.shape}: expected (n,), (n, 1) or (n, classes)")


def present_classes(labels: object, outputs: np.ndarray) -> list[int] | None:
    """The classes one split has images of, sorted, when they are fewer than the model's
    softmax outputs (``None``: all of them, or a sigmoid output).

    Macro F1 and AUC average over these: a class with images elsewhere (in train/) but none
    in this split has no support here and must not count (it would pull the macro F1 down
    and make the AUC undefined).

    Example:
        >>> present_classes([0, 2, 2], np.zeros((3, 3))), present_classes([0, 1], np.zeros((2, 2)))
        ([0, 2], None)
    """
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        return None
    present = sorted(int(c) for c in np.unique(np.asarray(labels)))
    return present if len(present) < outputs.shape[1] else None


def select_metric_value(scores: Mapping[str, float], metric: str) -> float:
    """The value of ``metric`` in a scores dict, oriented so that higher is better.

    ``f1``, ``accuracy``, ``balanced_accuracy``, ``mcc`` and ``auc`` (``roc_auc``) are
    returned as they are; ``loss`` is returned negated (``-loss``), so a tuner can always
    maximise. May be nan (e.g. AUC with one class).

    Example:
        >>> select_metric_value({"loss": 0.3, "f1": 0.8}, "loss")
        -0.3
    """
    key = metric_key(metric)
    if metric not in METRICS and metric != "roc_auc":
        raise AnanError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if key not in scores:
        raise AnanError(f"the scores have no {key!r}: compute them with anan_onnx.scores")
    value = float(scores[key])
    return -value if metric == "loss" else value
