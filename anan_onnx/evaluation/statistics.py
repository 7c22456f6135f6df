"""Statistics of scores: the Wilcoxon signed-rank test over folds or seeds and its stars,
and a bootstrap confidence interval of a metric on a small image set.

SciPy is imported when a test is computed (the ``eval`` extra).

Example:
    >>> significance_stars(0.004)
    '**'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.optional import need

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "SMALL_SAMPLE",
    "bootstrap_intervals",
    "bootstrap_p_value",
    "holm",
    "significance_stars",
    "wilcoxon_paired",
]

#: Fewer tuning images than this get a warning and a bootstrap interval of the metric.
SMALL_SAMPLE = 200
#: Resamples of :func:`bootstrap_intervals` (seeded: the same images give the same interval).
BOOTSTRAP_RESAMPLES = 1000


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


def holm(p_values: ArrayLike) -> list[float]:
    """Holm's step-down adjusted p-values of a family of tests (e.g. one test per layer).

    The i-th smallest p is multiplied by (m − i + 1) (i from 1), made non-decreasing in that
    order and capped at 1; a test is significant at level α when its adjusted p < α, which
    keeps the chance of any false finding in the family at most α (Holm 1979). A search over
    10 layers that finds one raw p < 0.05 is not a finding unless it survives this.

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if not np.all((p >= 0) & (p <= 1)):
        raise AnanError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [round(float(v), 15) for v in adjusted]


def bootstrap_intervals(
    n: int,
    statistics: Mapping[str, Callable[[np.ndarray], float]],
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals of statistics of the same ``n`` images.

    Every statistic gets the same resamples (an array of image indices drawn with
    replacement), so intervals of paired quantities, such as ANAN's metric and its
    difference to the base CNN's, come from the same draws. Written out rather than with
    ``scipy.stats.bootstrap`` because its seeding argument changed across the SciPy
    versions this package allows, and the interval must not.

    Args:
        n: number of images.
        statistics: name -> function of resampled indices (e.g. the F1 of those images).
        level: coverage of the interval.
        resamples, seed: the draws.

    Returns:
        name -> ``[low, high]``, or ``None`` where the statistic is not finite on some
        resample (e.g. an AUC of resamples holding one class).

    Example:
        >>> y = np.array([0, 1] * 20)
        >>> ci = bootstrap_intervals(40, {"mean": lambda i: float(y[i].mean())}, seed=1)
        >>> 0.3 < ci["mean"][0] < 0.5 < ci["mean"][1] < 0.7
        True
    """
    draws = _draws(n, resamples, seed)
    tail = (1 - level) / 2 * 100
    out: dict[str, list[float] | None] = {}
    for name, statistic in statistics.items():
        values = np.array([statistic(index) for index in draws], dtype=np.float64)
        finite = bool(np.all(np.isfinite(values)))
        bounds = np.percentile(values, [tail, 100 - tail]) if finite else None
        out[name] = [float(v) for v in bounds] if bounds is not None else None
    return out


def bootstrap_p_value(
    n: int,
    statistic: Callable[[np.ndarray], float],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> float:
    """Two-sided percentile-bootstrap p-value of "``statistic`` is 0" (e.g. ANAN's metric
    minus the base CNN's on the same images): ``2·min(P*(d ≤ 0), P*(d ≥ 0))`` over the
    draws of :func:`bootstrap_intervals` (same ``seed``: the same draws), so p < α exactly
    when the (1 − α) percentile interval excludes 0. Resamples where the difference is 0
    count on both sides (conservative). NaN where the statistic is not finite on some draw.

    Example:
        >>> d = np.array([0.0, 1.0] * 20)
        >>> bootstrap_p_value(40, lambda i: float(d[i].mean()))
        0.0
    """
    values = np.array([statistic(index) for index in _draws(n, resamples, seed)], np.float64)
    if not np.all(np.isfinite(values)):
        return math.nan
    below, above = float(np.mean(values <= 0)), float(np.mean(values >= 0))
    return min(1.0, 2 * min(below, above))


def _draws(n: int, resamples: int, seed: int) -> np.ndarray:
    """Resampled image indices (``resamples`` × ``n``, with replacement), seeded."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))
