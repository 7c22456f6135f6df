"""Scores, the threshold-tuned control, paired statistics, and report helpers.

Scores follow the paper (Table 3: loss, accuracy, F1) plus balanced accuracy, MCC and ROC
AUC, which stay informative on imbalanced sets such as Fire. The loss is Keras' binary
(or categorical) cross-entropy with probabilities clipped to [1e-7, 1 - 1e-7], so a
confidently wrong prediction costs about 16.1, as in the paper's Cats&Dogs CNN loss.

scikit-learn, SciPy and matplotlib are imported inside the functions that need them
(``pip install anan-onnx[eval]``), so that ``import anan_onnx`` works without them.

Example:
    >>> s = binary_scores([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1])
    >>> s["accuracy"], s["f1"]
    (0.75, 0.6666666666666666)
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx.errors import AnanError

__all__ = [
    "EPSILON",
    "METRICS",
    "bar_figure",
    "binary_scores",
    "markdown_table",
    "multiclass_scores",
    "scores",
    "select_metric_value",
    "significance_stars",
    "tune_threshold",
    "wilcoxon_paired",
]

#: Probability clipping of the cross-entropy (Keras' ``epsilon()``).
EPSILON = 1e-7
#: Metrics a tuner can optimise (see :func:`select_metric_value`).
METRICS: tuple[str, ...] = ("f1", "accuracy", "loss", "auc", "balanced_accuracy", "mcc")
_THRESHOLD_METRICS = ("f1", "accuracy", "balanced_accuracy", "mcc")


def _need(module: str) -> Any:
    """Imports an optional dependency with a one-line fix when it is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise AnanError(
            f"{module.split('.')[0]} is needed for evaluation: pip install 'anan-onnx[eval]'"
        ) from None


# --- scores ---------------------------------------------------------------------------------


def _labels(y_true: object, n_classes: int | None = None) -> np.ndarray:
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


def _probabilities(prob: object, n: int) -> np.ndarray:
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


def _one_column(prob: object, what: str) -> np.ndarray:
    p = np.asarray(prob)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1:
        raise AnanError(
            f"{what} needs one probability (of class 1) per image, shape (n,) or (n, 1), got "
            f"{p.shape}: use multiclass_scores for softmax outputs"
        )
    return p


def binary_scores(y_true: object, prob: object, threshold: float = 0.5) -> dict[str, float]:
    """Scores of a binary classifier that outputs P(class 1).

    A prediction is positive when ``prob > threshold`` (Keras' ``binary_accuracy`` rule).

    Args:
        y_true: labels 0/1, shape (n,) or (n, 1).
        prob: predicted probability of class 1, shape (n,) or (n, 1).
        threshold: decision threshold.

    Returns:
        ``loss`` (= ``bce``, clipped at 1e-7), ``accuracy``, ``f1`` (of class 1; 0 when
        nothing is predicted positive), ``balanced_accuracy``, ``mcc``, ``roc_auc`` (nan
        when only one class is present), ``positive_rate`` (share predicted positive),
        ``threshold`` and ``n``.

    Example:
        >>> binary_scores([0, 1], [0.3, 0.8])["accuracy"]
        1.0
    """
    metrics = _need("sklearn.metrics")
    y = _labels(y_true, 2)
    p = _probabilities(_one_column(prob, "binary_scores"), len(y))
    pred = (p > threshold).astype(np.int64)
    clipped = np.clip(p, EPSILON, 1 - EPSILON)
    bce = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-class inputs warn; the values are defined
        out = {
            "loss": float(bce),
            "bce": float(bce),
            "accuracy": float(np.mean(pred == y)),
            "f1": float(metrics.f1_score(y, pred, zero_division=0)),
            "balanced_accuracy": float(metrics.balanced_accuracy_score(y, pred)),
            "mcc": float(metrics.matthews_corrcoef(y, pred)),
            "roc_auc": float(metrics.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan,
            "positive_rate": float(pred.mean()),
            "threshold": float(threshold),
            "n": len(y),
        }
    return out


def multiclass_scores(y_true: object, probs: object) -> dict[str, float]:
    """Scores of a classifier with C >= 2 softmax outputs; the prediction is the argmax.

    Args:
        y_true: class indices, shape (n,).
        probs: probabilities, shape (n, C); rows are renormalised to sum to 1 (as Keras'
            categorical cross-entropy does).

    Returns:
        ``loss`` (= ``cross_entropy``, clipped at 1e-7), ``accuracy``, ``f1`` (macro),
        ``balanced_accuracy``, ``mcc``, ``roc_auc`` (one-vs-rest macro; nan when not every
        class is present), ``predicted_rate_<c>`` per class (and ``positive_rate`` = rate of
        class 1 when C = 2), and ``n``.

    Example:
        >>> multiclass_scores([0, 2], [[0.8, 0.1, 0.1], [0.1, 0.2, 0.7]])["accuracy"]
        1.0
    """
    metrics = _need("sklearn.metrics")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise AnanError(f"multiclass_scores needs probabilities of shape (n, C>=2), got {p.shape}")
    n_classes = p.shape[1]
    y = _labels(y_true, n_classes)
    p = _probabilities(p, len(y))
    sums = p.sum(axis=1, keepdims=True)
    p = np.divide(p, sums, out=np.full_like(p, 1.0 / n_classes), where=sums > 0)
    pred = p.argmax(axis=1)
    ce = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], EPSILON, 1 - EPSILON)))
    labels = list(range(n_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: dict[str, float] = {
            "loss": float(ce),
            "cross_entropy": float(ce),
            "accuracy": float(np.mean(pred == y)),
            "f1": float(metrics.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
            "balanced_accuracy": float(metrics.balanced_accuracy_score(y, pred)),
            "mcc": float(metrics.matthews_corrcoef(y, pred)),
            "roc_auc": _multiclass_auc(metrics, y, p),
        }
    rates = np.bincount(pred, minlength=n_classes) / len(y)
    out.update({f"predicted_rate_{c}": float(r) for c, r in enumerate(rates)})
    if n_classes == 2:
        out["positive_rate"] = float(rates[1])
    out["n"] = len(y)
    return out


def _multiclass_auc(metrics: Any, y: np.ndarray, p: np.ndarray) -> float:
    if len(np.unique(y)) != p.shape[1]:
        return math.nan  # one-vs-rest needs every class present
    try:
        if p.shape[1] == 2:
            return float(metrics.roc_auc_score(y, p[:, 1]))
        return float(metrics.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    except ValueError:
        return math.nan


def scores(y_true: object, probs: object, threshold: float = 0.5) -> dict[str, float]:
    """Scores for any classifier output, by its shape.

    (n,) or (n, 1): sigmoid output → :func:`binary_scores` with ``threshold``;
    (n, C>=2): softmax → :func:`multiclass_scores` (also for C = 2, where ``threshold`` is
    not used: the prediction is the argmax).

    Example:
        >>> scores([1, 0], [[0.2, 0.8], [0.6, 0.4]])["accuracy"]
        1.0
    """
    p = np.asarray(probs)
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        return binary_scores(y_true, p.reshape(-1), threshold)
    if p.ndim == 2:
        return multiclass_scores(y_true, p)
    raise AnanError(f"model output has shape {p.shape}: expected (n,), (n, 1) or (n, classes)")


# --- the control: threshold tuning --------------------------------------------------------


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
    if metric not in _THRESHOLD_METRICS:
        raise AnanError(
            f"cannot tune the threshold on {metric!r} (loss and AUC do not depend on it): use "
            f"one of {', '.join(_THRESHOLD_METRICS)}"
        )
    y = _labels(y_true, 2)
    p = _probabilities(_one_column(prob, "tune_threshold"), len(y))
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
    tp = len(p_pos) - np.searchsorted(p_pos, thresholds, side="right")
    fp = len(p_neg) - np.searchsorted(p_neg, thresholds, side="right")
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


def select_metric_value(scores: Mapping[str, float], metric: str) -> float:
    """The value of ``metric`` in a scores dict, oriented so that higher is better.

    ``f1``, ``accuracy``, ``balanced_accuracy``, ``mcc`` and ``auc`` (``roc_auc``) are
    returned as they are; ``loss`` is returned negated (``-loss``), so a tuner can always
    maximise. May be nan (e.g. AUC with one class).

    Example:
        >>> select_metric_value({"loss": 0.3, "f1": 0.8}, "loss")
        -0.3
    """
    key = {"auc": "roc_auc", "roc_auc": "roc_auc"}.get(metric, metric)
    if metric not in METRICS and metric != "roc_auc":
        raise AnanError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if key not in scores:
        raise AnanError(f"the scores have no {key!r}: compute them with anan_onnx.scores")
    value = float(scores[key])
    return -value if metric == "loss" else value


# --- statistics -----------------------------------------------------------------------------


def significance_stars(p_value: float) -> str:
    """``"**"`` for p < 0.01, ``"*"`` for p < 0.05, else ``""`` (the paper's Table 3)."""
    if not math.isfinite(p_value):
        return ""
    return "**" if p_value < 0.01 else "*" if p_value < 0.05 else ""


def wilcoxon_paired(base: Sequence[float], anan: Sequence[float]) -> dict[str, Any]:
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
    stats = _need("scipy.stats")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sample size too small" for n < 10 is expected
        res = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    p = float(res.pvalue)
    p = 1.0 if math.isnan(p) else min(p, 1.0)
    return {"statistic": float(res.statistic), "p_value": p, **out, "stars": significance_stars(p)}


# --- reports --------------------------------------------------------------------------------


def _cell(value: object, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str], *, digits: int = 3
) -> str:
    """A GitHub-flavoured Markdown table; floats get ``digits`` decimals (the paper's 3).

    Missing keys and ``None`` give empty cells; ``|`` in text is escaped.

    Example:
        >>> print(markdown_table([{"model": "CNN", "f1": 0.61}], ["model", "f1"]))
        | model | f1 |
        | --- | --- |
        | CNN | 0.610 |
    """
    if not columns:
        raise AnanError("markdown_table needs at least one column")
    lines = [
        "| " + " | ".join(_cell(c, digits) for c in columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    lines += ["| " + " | ".join(_cell(r.get(c), digits) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


Bars = Mapping[str, Mapping[str, Sequence[Any]]]


def bar_figure(
    path: str | os.PathLike[str],
    datasets: Bars,
    *,
    metrics: Sequence[str] | None = None,
    labels: Sequence[str] = ("CNN", "ANAN", "control"),
    title: str | None = None,
) -> Path:
    """Writes a PNG like the paper's Figure 5: base vs ANAN (vs control) bars per data set.

    One panel per metric; in each, a group of bars per data set, and the significance stars
    above the better of base and ANAN. The file is written atomically (temporary file in
    the same folder, then renamed), so a reader never sees a half-written figure.

    Args:
        path: the PNG to write; its folder must exist.
        datasets: data set name → metric name → ``(base, anan, stars)`` or
            ``(base, anan, stars, control)``.
        metrics: panels to draw, in order; default: every metric found, first-seen order.
        labels: legend names of base, ANAN and control.
        title: figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> bar_figure("fig5.png", {"Fire": {"F1": (0.959, 0.973, "*"),
        ...     "Accuracy": (0.981, 0.987, "*")}})  # doctest: +SKIP
    """
    out = Path(path)
    if not out.parent.is_dir():
        raise AnanError(f"folder {out.parent} does not exist: create it before writing {out.name}")
    if not datasets:
        raise AnanError("bar_figure needs at least one data set")
    if metrics is None:
        metrics = list(dict.fromkeys(m for per in datasets.values() for m in per))
    _need("matplotlib")
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    names = list(datasets)
    has_control = any(len(v) > 3 for per in datasets.values() for v in per.values())
    n_bars = 3 if has_control else 2
    width = 0.8 / n_bars
    colours = ("#8c8c8c", "#d95f02", "#7570b3")
    fig = Figure(figsize=(max(4.0, 1.6 * len(names)) * len(metrics) / 1.4, 3.6), dpi=120)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for i, name in enumerate(names):
            value = datasets[name].get(metric)
            if value is None:
                continue
            heights = [float(value[0]), float(value[1])]
            if n_bars == 3:
                heights.append(float(value[3]) if len(value) > 3 else math.nan)
            for j, h in enumerate(heights):
                x = i + (j - (n_bars - 1) / 2) * width
                ax.bar(x, h, width, color=colours[j], label=labels[j] if i == 0 else None)
            stars = str(value[2]) if len(value) > 2 and value[2] else ""
            if stars:
                j = int(heights[1] >= heights[0])
                x = i + (j - (n_bars - 1) / 2) * width
                ax.text(x, heights[j] + 0.01, stars, ha="center", va="bottom", fontsize=12)
        ax.set_title(metric)
        ax.set_xticks(range(len(names)), names)
        ax.set_ylim(0, 1.1)
        ax.grid(axis="y", alpha=0.3)
    handles, names_shown = axes[0].get_legend_handles_labels()
    # Below the panels, so it never hides a bar.
    fig.legend(handles, names_shown, loc="lower center", ncol=n_bars, fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save_atomic(fig, out)
    return out


def _save_atomic(fig: Any, out: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
