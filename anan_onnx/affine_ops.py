"""The per-channel affine map of one constant arithmetic op: ``Add``, ``Sub``, ``Mul`` or
``Div`` of the data and a constant ``c`` is ``scale * data + shift``.

Shared by the canonical form (:mod:`anan_onnx.canonical`, folding such ops into the
target Conv) and the reading of a model's own input scaling
(:mod:`anan_onnx.runtime.own_scaling`), so both fold the same arithmetic the same way.
Needs numpy only.

Example:
    >>> affine_op("Sub", False, np.array([2.0]))  # c - data
    (array([-1.]), array([2.]))
"""

from __future__ import annotations

import numpy as np

__all__ = ["AFFINE_OPS", "affine_op"]

#: The ops :func:`affine_op` folds.
AFFINE_OPS = ("Add", "Sub", "Mul", "Div")


def affine_op(
    op_type: str, data_first: bool, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(scale, shift)``, each of ``c``'s shape, with ``op(data, c) = scale * data + shift``
    (``data_first``: the data is the op's first input); ``None`` when it is not affine in
    the data (``c / data``, a division by 0, another op)."""
    one, zero = np.ones(c.shape), np.zeros(c.shape)
    if op_type == "Add":
        return one, c
    if op_type == "Sub":
        return (one, -c) if data_first else (-one, c)
    if op_type == "Mul":
        return c, zero
    if op_type == "Div" and data_first and np.all(c != 0):
        return 1 / c, zero
    return None
