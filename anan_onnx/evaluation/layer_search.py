"""Where do astrocytes help? The grid searched for each Conv of a model (``tune --layers``).

For each target layer on its own (``all``, ``first:N`` or names), in depth order:

1. the grid is scored on the validation images with the fast grid split around that Conv
   (:func:`~anan_onnx.evaluation.tune.grid_search` with ``layer``), and the best
   configuration is chosen there, exactly as ``tune`` does for one layer;
2. the chosen configuration is converted (the ANAN graph, which equals the literal loop)
   and scored on the test images, with a 95 % percentile-bootstrap interval of its metric
   and of its difference to the base CNN (the same resampled images for both);
3. beside it, per model: the base CNN on the test images and the **control** (the base
   CNN's decision threshold, or class weights, tuned on the same validation images);
4. a two-sided paired bootstrap p-value of "ANAN − CNN = 0" per layer, Holm-adjusted
   across the layers searched (``p_holm``).

The test images never choose anything. A search over many layers that finds one interval
excluding 0 is not a finding by itself: over folds, ``evaluate --layers`` gives the paired
Wilcoxon test per layer with Holm's correction across the layers
(:func:`~anan_onnx.evaluation.statistics.holm`).

Example:
    >>> result = layer_search("models/fire_cnn.keras", "../shared/data/fire")  # doctest: +SKIP
    >>> print(result.markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from anan_onnx import metadata as _metadata
from anan_onnx._public import public
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.control import control
from anan_onnx.evaluation.engine import Engine, LocalEngine, model_outputs
from anan_onnx.evaluation.fold_data import FoldData
from anan_onnx.evaluation.grid import PAPER_GRID, Grid
from anan_onnx.evaluation.metric_names import DEFAULT_METRIC, check_metric, metric_key
from anan_onnx.evaluation.report import Series, depth_figure_png, markdown_table
from anan_onnx.evaluation.scores import present_classes, scores
from anan_onnx.evaluation.statistics import bootstrap_p_value, holm
from anan_onnx.evaluation.tune import (
    check_labels,
    grid_search,
    load_model,
    match_model_classes,
    metric_interval,
)
from anan_onnx.model_io import write_all_atomic
from anan_onnx.options import RunOptions, SplitOptions
from anan_onnx.params import AnanParams
from anan_onnx.runtime.inputs import InputSpec

if TYPE_CHECKING:
    from anan_onnx.convert.preprocessing import PreprocessRequest

__all__ = ["LayerSearch", "layer_names", "layer_search"]

#: The columns of layers.csv, in order (one row per target layer).
COLUMNS = (
    "depth",
    "layer",
    "val_anan",
    "val_base",
    "k",
    "mu",
    "a",
    "b",
    "rule",
    "test_anan",
    "test_anan_low",
    "test_anan_high",
    "test_difference_low",
    "test_difference_high",
    "test_base",
    "test_control",
    "p_bootstrap",
    "p_holm",
)


@public
@dataclasses.dataclass
class LayerSearch:
    """The per-layer result of :func:`layer_search`.

    Attributes:
        rows: one dict per layer (:data:`COLUMNS`), in depth order.
        metric: the selection metric (the values are that metric's, loss included).
        info: model, data, split and grid used.
        seconds: wall time of the search.
    """

    rows: list[dict[str, Any]]
    metric: str
    info: dict[str, Any]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The search as one JSON-ready dict (``tune --layers --json``)."""
        return {"metric": self.metric, **self.info, "seconds": self.seconds, "layers": self.rows}

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()

    def markdown(self) -> str:
        """The per-layer table, and how to read it."""
        key = metric_key(self.metric)
        table = [
            {
                "depth": r["depth"],
                "layer": r["layer"],
                f"val {key} (ANAN / CNN)": f"{r['val_anan']:.3f} / {r['val_base']:.3f}",
                "chosen (k, μ, a, b)": f"{r['k']}, {r['mu']}, {r['a']:g}, {r['b']:g}",
                f"test {key} ANAN [95 % CI]": _with_interval(
                    r["test_anan"], r["test_anan_low"], r["test_anan_high"]
                ),
                "ANAN − CNN [95 % CI]": _with_interval(
                    r["test_anan"] - r["test_base"],
                    r["test_difference_low"],
                    r["test_difference_high"],
                    signed=True,
                ),
                "test CNN": f"{r['test_base']:.3f}",
                "test control": f"{r['test_control']:.3f}",
                "p (Holm)": f"{r['p_bootstrap']:.3f} ({r['p_holm']:.3f})",
            }
            for r in self.rows
        ]
        note = (
            f"Parameters chosen per layer on the validation images ({key}); test values with "
            "95 % percentile-bootstrap intervals over the test images. The control is the "
            "base CNN with only its decision threshold tuned on the same validation images. "
            "p: two-sided paired bootstrap test of ANAN − CNN = 0 on the test images; in "
            "brackets Holm-adjusted across the layers searched (the intervals are not "
            "adjusted). Over fold models use `evaluate --layers` (Wilcoxon per layer, "
            "Holm-corrected)."
        )
        return markdown_table(table, list(table[0])) + "\n\n" + note + "\n"

    def figure_png(self, title: str | None = None) -> bytes:
        """The test metric against depth: ANAN with its interval, the base and the control."""
        rows, key = self.rows, metric_key(self.metric)

        def column(name: str) -> list[Any]:
            return [r[name] for r in rows]

        lines: dict[str, Series] = {
            "ANAN (95 % CI)": (column("test_anan"), column("test_anan_low"),
                               column("test_anan_high")),
            "CNN": (column("test_base"), None, None),
            "control (threshold)": (column("test_control"), None, None),
        }  # fmt: skip
        return depth_figure_png(column("layer"), lines, ylabel=f"test {key}", title=title)

    def write(self, folder: str | Path, title: str | None = None) -> tuple[Path, Path, Path]:
        """Writes ``layers.csv``, ``layers.md`` and ``layers.png`` into ``folder``, all or
        none."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = folder / "layers.csv", folder / "layers.md", folder / "layers.png"
        contents = (self.csv_text().encode(), self.markdown().encode(), self.figure_png(title))
        write_all_atomic(list(zip(contents, paths, strict=True)))
        return paths


def _with_interval(
    value: float, low: float | None, high: float | None, signed: bool = False
) -> str:
    shown = f"{value:+.3f}" if signed else f"{value:.3f}"
    if low is None or high is None or not np.isfinite([low, high]).all():
        return shown
    return f"{shown} [{low:.3f}, {high:.3f}]"


def layer_names(base: onnx.ModelProto, layers: str) -> list[str]:
    """The Conv node names ``layers`` (``all``, ``first:N``, names) picks, in depth order."""
    from anan_onnx.convert.normalise import normalise_base_layers  # onnx-ir on use

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Convs skipped inside control flow: said by convert
        _, targets = normalise_base_layers(base, AnanParams(), layers)
    return [t.name for t in targets]


@public
def layer_search(
    model: str | Path,
    data: str | Path | None,
    *,
    layers: str = "all",
    grid: Grid = PAPER_GRID,
    metric: str = DEFAULT_METRIC,
    split: SplitOptions | None = None,
    run: RunOptions | None = None,
    engine: Engine | None = None,
    preprocess: PreprocessRequest | None = None,
) -> LayerSearch:
    """Tunes the grid on the validation images for each layer and scores it on test.

    Args:
        model: base CNN (``.keras``, ``.h5``, ``.onnx``); with a ``training.json`` beside it,
            its own validation and test images are used.
        data: the labelled image set.
        layers: ``all`` (default), ``first:N`` or Conv names separated by commas.
        grid, metric: what to search and how to select (see :func:`grid_search`).
        split, run, engine: as :func:`~anan_onnx.evaluation.tune.tune`.
        preprocess: overrides the model's preprocessing, as ``convert``'s options.
    """
    check_metric(metric)
    split, run, engine = split or SplitOptions(), run or RunOptions(), engine or LocalEngine()
    start = time.perf_counter()
    path = Path(model)
    base = load_model(path, preprocess=preprocess)
    names = layer_names(base, layers)
    spec = InputSpec.from_metadata(_metadata.read_metadata(base))
    source = FoldData([path], Path(data) if data is not None else None, split, run.progress)
    val, test = source.splits(path, spec, need_val=True)
    if val is None:
        raise AnanError("no validation images to tune on: pass --val-fraction > 0")
    classes = match_model_classes(base, path, test.classes, split.positive is not None)
    y_val, y_test = classes.labels(val.labels), classes.labels(test.labels)

    def outputs(m: onnx.ModelProto, images: Any) -> np.ndarray:
        return model_outputs(engine, m, images, run.threads, run.batch_size)

    base_val, base_test = outputs(base, val.images), outputs(base, test.images)
    check_labels(base_test, y_test, classes.model_classes)
    present = present_classes(y_test, base_test)  # the classes the test split has images of
    _, control_scores = control(y_val, base_val, base_test, y_test, metric)
    key = metric_key(metric)
    common = {
        "test_base": scores(y_test, base_test, classes=present, only=key)[key],
        "test_control": control_scores[key],
    }
    rows = []
    for depth, name in enumerate(names, start=1):
        tuned = grid_search(
            base, val.images, val.labels, grid, metric, class_map=classes, layer=name, run=run,
            engine=engine,
        )  # fmt: skip
        anan_test = outputs(_converted(base, tuned.params, name), test.images)
        ci = metric_interval(y_test, anan_test, base_test, metric, present)

        def difference(index: np.ndarray, anan: np.ndarray = anan_test) -> float:
            def value(out: np.ndarray) -> float:
                return scores(y_test[index], out[index], classes=present, only=key)[key]

            return value(anan) - value(base_test)

        rows.append(
            {
                "depth": depth,
                "layer": name,
                "val_anan": tuned.best[key],
                "val_base": tuned.base_scores[key],
                **{q: getattr(tuned.params, q) for q in ("k", "mu", "a", "b", "rule")},
                "test_anan": scores(y_test, anan_test, classes=present, only=key)[key],
                **_bounds("test_anan", ci["anan"]),
                **_bounds("test_difference", ci["difference"]),
                **common,
                "p_bootstrap": bootstrap_p_value(len(y_test), difference),
            }
        )
    _add_holm(rows)
    info = {
        "model": str(model),
        "data": str(data),
        "layers": layers,
        "grid": grid.as_dict(),
        "n_val": len(y_val),
        "n_test": len(y_test),
        "val_source": val.source,
        "test_source": test.source,
    }
    return LayerSearch(rows, metric, info, time.perf_counter() - start)


def _add_holm(rows: list[dict[str, Any]]) -> None:
    """``p_holm``: the layers' bootstrap p-values Holm-adjusted across the layers searched."""
    finite = [r for r in rows if np.isfinite(r["p_bootstrap"])]
    for row, p in zip(finite, holm([r["p_bootstrap"] for r in finite]), strict=True):
        row["p_holm"] = p
    for row in rows:
        row.setdefault("p_holm", math.nan)


def _bounds(name: str, interval: list[float] | None) -> dict[str, float | None]:
    low, high = interval if interval is not None else (None, None)
    return {f"{name}_low": low, f"{name}_high": high}


def _converted(base: onnx.ModelProto, params: AnanParams, layer: str) -> onnx.ModelProto:
    from anan_onnx.convert.pipeline import convert_model  # the converter (onnx-ir) on use

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mu > k is the grid's own choice
        return convert_model(base, params, layer=layer).anan
