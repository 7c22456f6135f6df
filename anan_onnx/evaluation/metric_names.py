"""The names of the scores: which metrics a tuner selects by, which are reported.

Kept apart from the scores themselves (numpy, scikit-learn) so that the command line can
offer them without importing either.

Example:
    >>> check_metric("auc"), metric_key("auc")
    ('auc', 'roc_auc')
"""

from __future__ import annotations

from anan_onnx.errors import AnanError

__all__ = ["DEFAULT_METRIC", "DISPLAY_NAMES", "METRICS", "REPORTED", "check_metric", "metric_key"]

#: What tune and evaluate select by unless told: the paper's metric.
DEFAULT_METRIC = "f1"

#: Metrics a tuner can optimise (see :func:`anan_onnx.evaluation.scores.select_metric_value`).
METRICS: tuple[str, ...] = ("f1", "accuracy", "loss", "auc", "balanced_accuracy", "mcc")
#: Scores reported per configuration (tune's grid.csv) and per model (evaluate's report):
#: the paper's loss, accuracy, F1, plus imbalance-aware ones.
REPORTED: tuple[str, ...] = (
    "loss",
    "accuracy",
    "f1",
    "balanced_accuracy",
    "mcc",
    "roc_auc",
    "positive_rate",
)
#: How reports name the scores.
DISPLAY_NAMES: dict[str, str] = {
    "loss": "Loss",
    "accuracy": "Accuracy",
    "f1": "F1",
    "balanced_accuracy": "Balanced acc.",
    "mcc": "MCC",
    "roc_auc": "ROC-AUC",
    "positive_rate": "Positive rate",
}


def metric_key(metric: str) -> str:
    """The scores key of a selection metric: ``auc`` is ``roc_auc``, others are themselves."""
    return "roc_auc" if metric == "auc" else metric


def check_metric(metric: str) -> str:
    """``metric`` if a tuner can select by it, else a one-line refusal."""
    if metric not in METRICS:
        raise AnanError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return metric
