"""Report rendering: Markdown tables and bar figures like the paper's Figure 5.

matplotlib is imported when a figure is drawn (``pip install anan-onnx[eval]``); the
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

__all__ = ["bar_figure", "bar_figure_png", "markdown_table"]


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
    write_bytes_atomic(bar_figure_png(datasets, metrics=metrics, labels=labels, title=title), out)
    return out


def bar_figure_png(
    datasets: Bars,
    *,
    metrics: Sequence[str] | None = None,
    labels: Sequence[str] = ("CNN", "ANAN", "control"),
    title: str | None = None,
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
    png = io.BytesIO()
    fig.savefig(png, format="png")
    return png.getvalue()
