"""Predicted classes from model outputs, and agreement up to the decision boundary.

Kept apart from ``_verify`` (which imports onnx) so that ``predict`` needs only numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["decision_margin", "labels_agree", "predicted_labels"]

TOLERANCE = 1e-5


def labels_agree(
    ours: np.ndarray, expected: np.ndarray, tolerance: float = TOLERANCE
) -> np.ndarray:
    """Per row: same predicted class, or the reference sits on the decision boundary.

    A reference output within ``tolerance`` of the boundary (p = 0.5, or two classes
    equally likely) has no well-defined class; the max-abs-diff check still covers it.
    """
    same = predicted_labels(ours) == predicted_labels(expected)
    return same | (decision_margin(expected) <= tolerance)


def decision_margin(outputs: np.ndarray) -> np.ndarray:
    """Distance of each row from the decision boundary: |p - 0.5|, or top-1 minus top-2."""
    outputs = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        return np.abs(outputs[:, 0] - 0.5)
    top = np.sort(outputs, axis=1)
    return top[:, -1] - top[:, -2]


def predicted_labels(outputs: np.ndarray) -> np.ndarray:
    """Class per row: ``p > 0.5`` for a single sigmoid column, else the arg-max."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(len(outputs)) > 0.5).astype(np.int64)
    return outputs.reshape(len(outputs), -1).argmax(axis=1)
