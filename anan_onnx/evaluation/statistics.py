"""Paired statistics over folds or seeds: the Wilcoxon signed-rank test and its stars.

SciPy is imported when a test is computed (``pip install anan-onnx[eval]``).

Example:
    >>> significance_stars(0.004)
    '**'
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.optional import need

__all__ = ["significance_stars", "wilcoxon_paired"]


def significance_stars(p_value: float) -> str:
    """``"**"`` for p < 0.01, ``"*"`` for p < 0.05, else ``""`` (the paper's Table 3)."""
    if not math.isfinite(p_value):
        return ""
    return "**" if p_value < 0.01 else "*" if p_value < 0.05 else ""


def wilcoxon_paired(base: ArrayLike, anan: ArrayLike) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of paired scores (e.g. per fold or per seed).

    Zero differences are dropped (``zero_method="wilcox"``); when every difference is zero
    the models are indistinguishable and ``p_value`` is 1.0. SciPy picks the exact
    distribution for small samples without ties.

    Args:
        base: scores of the base CNN.
        anan: scores of ANAN, paired with ``base``.

    Returns:
        ``statistic``, ``p_value``, ``n`` (pairs), ``n_nonzero``, ``median_difference``
        (anan - base; its sign says which model the stars favour) and ``stars``.

    Example:
        >>> wilcoxon_paired([0.1] * 6, [0.2, 0.3, 0.4, 0.5, 0.6, 0.7])["p_value"]
        0.03125
    """
    b = np.asarray(base, dtype=np.float64).ravel()
    a = np.asarray(anan, dtype=np.float64).ravel()
    if len(a) != len(b) or len(a) == 0:
        raise AnanError(
            f"paired test needs equally many base and ANAN scores, got {len(b)} and {len(a)}"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise AnanError("paired test got NaN or Inf scores: drop the runs that failed")
    diff = a - b
    nonzero = int(np.count_nonzero(diff))
    out: dict[str, Any] = {
        "n": len(a),
        "n_nonzero": nonzero,
        "median_difference": float(np.median(diff)),
    }
    if nonzero == 0:
        return {"statistic": 0.0, "p_value": 1.0, **out, "stars": ""}
    stats = need("scipy.stats")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sample size too small" for n < 10 is expected
        res = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    p = float(res.pvalue)
    p = 1.0 if math.isnan(p) else min(p, 1.0)
    return {"statistic": float(res.statistic), "p_value": p, **out, "stars": significance_stars(p)}
