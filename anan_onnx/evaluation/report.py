"""Report rendering: Markdown tables and bar figures like the paper's Figure 5.

matplotlib is imported when a figure is drawn (the ``eval`` extra); the
figure is drawn on an Agg canvas without pyplot, so no global state is touched.

Example:
    >>> print(markdown_table([{"model": "CNN", "f1": 0.61}], ["model", "f1"]))
    | model | f1 |
    | --- | --- |
    | CNN | 0.610 |
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.optional import need
from anan_onnx.model_io import write_bytes_atomic

__all__ = ["bar_figure", "bar_figure_png", "depth_figure_png", "markdown_table"]


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
#: data set → metric → standard deviation over folds of (base, anan[, control])
Errors = Mapping[str, Mapping[str, Sequence[float]]]


def bar_figure(
    path: str | os.PathLike[str],
    datasets: Bars,
    *,
    metrics: Sequence[str] | None = None,
    labels: Sequence[str] = ("CNN", "ANAN", "control"),
    title: str | None = None,
    errors: Errors | None = None,
) -> Path:
    """Writes a PNG like the paper's Figure 5: base vs ANAN (vs control) bars per data set.

    One panel per data set and metric, each bar labelled with its value, error bars
    (± one standard deviation over folds) where ``errors`` gives them, and the significance
    stars above the better of base and ANAN. Each panel's value axis spans its bars' range
    (not 0-1), so that differences of a few hundredths show; where it does not start at 0
    the axis says so. The file is written atomically (temporary file in the same folder,
    then renamed), so a reader never sees a half-written figure.

    Args:
        path: the PNG to write; its folder must exist.
        datasets: data set name → metric name → ``(base, anan, stars)`` or
            ``(base, anan, stars, control)``.
        metrics: panel rows, in order; default: every metric found, first-seen order.
        labels: legend names of base, ANAN and control.
        title: figure title.
        errors: the standard deviations to draw as error bars (same keys as ``datasets``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> bar_figure("fig5.png", {"Fire": {"F1": (0.959, 0.973, "*"),
        ...     "Accuracy": (0.981, 0.987, "*")}})  # doctest: +SKIP
    """
    out = Path(path)
    if not out.parent.is_dir():
        raise AnanError(f"folder {out.parent} does not exist: create it before writing {out.name}")
    png = bar_figure_png(datasets, metrics=metrics, labels=labels, title=title, errors=errors)
    write_bytes_atomic(png, out)
    return out


def bar_figure_png(
    datasets: Bars,
    *,
    metrics: Sequence[str] | None = None,
    labels: Sequence[str] = ("CNN", "ANAN", "control"),
    title: str | None = None,
    errors: Errors | None = None,
) -> bytes:
    """The PNG bytes of :func:`bar_figure` (same arguments, no path): for callers that
    write it together with other files."""
    if not datasets:
        raise AnanError("bar_figure needs at least one data set")
    if metrics is None:
        metrics = list(dict.fromkeys(m for per in datasets.values() for m in per))
    need("matplotlib")
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    names = list(datasets)
    has_control = any(len(v) > 3 for per in datasets.values() for v in per.values())
    n_bars = 3 if has_control else 2
    fig = Figure(figsize=(0.6 + 2.3 * len(names), 0.5 + 2.9 * len(metrics)), dpi=120)
    grid = fig.subplots(len(metrics), len(names), squeeze=False)
    for row, metric in enumerate(metrics):
        for col, name in enumerate(names):
            ax = grid[row][col]
            spread = errors.get(name, {}).get(metric) if errors else None
            _panel(ax, datasets[name].get(metric), spread, n_bars, labels)
            ax.set_title(f"{name.replace(chr(10), ' ')}: {metric}", fontsize=9)
    handles, names_shown = grid[0][0].get_legend_handles_labels()
    # Below the panels, so it never hides a bar.
    fig.legend(handles, names_shown, loc="lower center", ncol=n_bars, fontsize=9, frameon=False)
    if errors:
        fig.text(0.99, 0.01, "whiskers: ± 1 standard deviation over folds", ha="right",
                 va="bottom", fontsize=7, color="#555")  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    png = io.BytesIO()
    fig.savefig(png, format="png")
    return png.getvalue()


_COLOURS = ("#8c8c8c", "#d95f02", "#7570b3")


def _panel(
    ax: Any,
    value: Sequence[Any] | None,
    spread: Sequence[float] | None,
    n_bars: int,
    labels: Sequence[str],
) -> None:
    """One data set and metric: bars with their values, error bars and stars, on an axis
    fitted to them (a panel of its own, so that a small difference shows)."""
    ax.set_xticks([])
    if value is None:
        ax.set_axis_off()
        return
    heights = [float(value[0]), float(value[1])]
    if n_bars == 3:
        heights.append(float(value[3]) if len(value) > 3 else math.nan)
    errs = [float(e) for e in (spread or ())] + [math.nan] * n_bars
    errs = [e if math.isfinite(e) else 0.0 for e in errs[:n_bars]]
    shown = [j for j, h in enumerate(heights) if math.isfinite(h)]
    for j in shown:
        whisker = {"elinewidth": 1, "ecolor": "#333"}
        ax.bar(j, heights[j], 0.8, color=_COLOURS[j], label=labels[j],
               yerr=errs[j] or None, capsize=4, error_kw=whisker)  # fmt: skip
    low, high = _axis_range(
        [heights[j] - errs[j] for j in shown], [heights[j] + errs[j] for j in shown]
    )
    ax.set_ylim(low, high)
    for j in shown:  # the value inside the bar, at its foot (clear of the error bar)
        ax.text(j, low + (high - low) * 0.03, f"{heights[j]:.3f}", ha="center", va="bottom",
                fontsize=8, color="white", fontweight="bold")  # fmt: skip
    stars = str(value[2]) if len(value) > 2 and value[2] else ""
    if stars:
        j = int(heights[1] >= heights[0])
        ax.text(j, heights[j] + errs[j] + (high - low) * 0.02, stars, ha="center", va="bottom",
                fontsize=12)  # fmt: skip
    ax.tick_params(axis="y", labelsize=8)
    if low > 0:
        ax.set_ylabel(f"axis from {low:.3g}, not 0", fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def _axis_range(bottoms: list[float], tops: list[float]) -> tuple[float, float]:
    """A value range that shows the bars' differences: their span (at least 0.02) with room
    below for the value labels and above for the stars; never below 0."""
    if not tops:
        return 0.0, 1.0
    low, high = min(bottoms), max(tops)
    span = max(high - low, 0.02)
    return max(0.0, low - 1.5 * span), high + 0.4 * span


#: One line of :func:`depth_figure_png`: a value per layer, and optional interval bounds.
Series = tuple[Sequence[float], Sequence[float | None] | None, Sequence[float | None] | None]


def depth_figure_png(
    layers: Sequence[str],
    lines: Mapping[str, Series],
    *,
    ylabel: str,
    title: str | None = None,
) -> bytes:
    """A metric against layer depth (``tune --layers``): one line per entry of ``lines``
    (label → values, lows, highs), with the interval drawn as whiskers where given."""
    need("matplotlib")
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    depth = np.arange(1, len(layers) + 1)
    fig = Figure(figsize=(1.8 + 0.9 * len(layers), 3.4), dpi=120)
    ax = fig.subplots()
    for i, (label, (values, lows, highs)) in enumerate(lines.items()):
        y = np.asarray(values, float)
        colour = _COLOURS[(1, 0, 2)[i % 3]]  # ANAN orange, CNN grey, control purple
        style: dict[str, Any] = {"marker": "o", "color": colour, "label": label}
        if lows is not None and highs is not None:
            low = np.array([math.nan if v is None else v for v in lows], float)
            high = np.array([math.nan if v is None else v for v in highs], float)
            ax.errorbar(depth, y, yerr=[y - low, high - y], capsize=3, **style)
        else:
            ax.plot(depth, y, linestyle="--" if i else "-", **style)
    ax.set_xticks(depth, [f"{d}\n{_short(n)}" for d, n in zip(depth, layers, strict=True)])
    ax.set_xlabel("modulated Conv (depth)", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, frameon=False, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    return png.getvalue()


def _short(name: str) -> str:
    """A layer's name as a tick label: tf2onnx paths keep their layer segment."""
    parts = [p for p in name.split("/") if p]
    return parts[1] if len(parts) > 2 else name[-14:]
