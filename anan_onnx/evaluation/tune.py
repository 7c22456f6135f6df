"""Grid search of the ANAN parameters on a validation split (the paper's Section 3.3.3).

The default grid is the paper's: k 4–8, μ 2–4, a 1.05–1.50 and b 0.05–0.50 in steps of 0.15
(240 configurations). Each option combination (rule, counter, signal, reduce) given is
searched too; every configuration is scored on the tuning images with
:func:`anan_onnx.evaluation.scores.scores` and the best one by the selection metric wins.
The work is done by :class:`anan_onnx.evaluation.fastgrid.FastGrid`, which equals running the
tunable ONNX export configuration by configuration.

Parameters are tuned on a validation split; tuning on the test split (``tune_on="test"``)
is possible but warns, because the test scores then measure the fit to those very images.

Example:
    >>> result = tune("models/catsdogs_cnn.keras", "../shared/data/cats_dogs")  # doctest: +SKIP
    >>> result.params.describe()  # doctest: +SKIP
    'k=4 mu=2 a=1.05 b=0.35 idle=0 rule=multiplicative counter=absorbing ...'
    >>> result.write_csv("out/grid.csv"); result.write_json("out/best.json")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from anan_onnx import metadata as _metadata
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.engine import Engine, LocalEngine, base_outputs, grid_outputs
from anan_onnx.evaluation.fastgrid import FastGrid, GridPoint
from anan_onnx.evaluation.lazy_images import LazyImages
from anan_onnx.params import (
    COUNTERS,
    REDUCES,
    RULES,
    SIGNALS,
    AnanParams,
    Counter,
    Reduce,
    Rule,
    Signal,
)

__all__ = [
    "PAPER_GRID",
    "SCORE_COLUMNS",
    "TUNE_ON",
    "Grid",
    "TuneResult",
    "check_labels",
    "grid_search",
    "load_model",
    "parse_values",
    "tune",
]

#: Where parameters may be tuned.
TUNE_ON: tuple[str, ...] = ("val", "test")
#: Score columns written per configuration (see :func:`anan_onnx.evaluation.scores.scores`).
SCORE_COLUMNS: tuple[str, ...] = (
    "loss",
    "accuracy",
    "f1",
    "balanced_accuracy",
    "mcc",
    "roc_auc",
    "positive_rate",
)
_NUMBERS = ("k", "mu", "a", "b", "idle")
_OPTIONS = {"rules": RULES, "counters": COUNTERS, "signals": SIGNALS, "reduces": REDUCES}
TEST_WARNING = (
    "tuning on the test split: the parameters are chosen to fit these very images, so test "
    "scores of the tuned model are optimistically biased and cannot be compared with the "
    "base CNN's; tune on a validation split (--tune-on val) for honest estimates"
)


# --- the grid ------------------------------------------------------------------------------


def parse_values(name: str, text: str, *, integer: bool = False) -> tuple[float, ...]:
    """Parses a grid axis: ``"4,5,6"``, a range ``"4:8"`` / ``"1.05:1.5:0.15"``, or a mix.

    A range ``start:stop[:step]`` includes ``stop`` when it lies on the grid (within 1e-9);
    the step defaults to 1. Values are rounded to 10 decimals (``1.05 + 0.15`` is ``1.2``).

    Args:
        name: the parameter (for messages), e.g. ``"a"``.
        text: the values.
        integer: the values must be integers (k, μ).

    Raises:
        AnanError: an item is not a number or a valid range.

    Example:
        >>> parse_values("a", "1.05:1.5:0.15")
        (1.05, 1.2, 1.35, 1.5)
        >>> parse_values("k", "4,6:8", integer=True)
        (4, 6, 7, 8)
    """
    values: list[float] = []
    items = [t.strip() for t in str(text).split(",")]
    if not any(items):
        raise AnanError(f"--{name} is empty: pass values such as --{name} 1,2 or a range 1:3")
    for item in items:
        parts = item.split(":")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise AnanError(
                f"--{name}: {item!r} is not a number or a range start:stop:step; pass e.g. "
                f"--{name} {'4,5' if integer else '1.05,1.2'} or "
                f"--{name} {'4:8' if integer else '1.05:1.5:0.15'}"
            ) from None
        if not all(math.isfinite(v) for v in numbers) or len(numbers) > 3:
            raise AnanError(f"--{name}: {item!r} is not a finite number or start:stop:step")
        if len(numbers) == 1:
            values.append(numbers[0])
            continue
        start, stop = numbers[0], numbers[1]
        step = numbers[2] if len(numbers) == 3 else 1.0
        if step <= 0 or stop < start:
            raise AnanError(
                f"--{name}: range {item!r} needs start <= stop and a positive step, "
                f"e.g. {'4:8' if integer else '1.05:1.5:0.15'}"
            )
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        values += [start + i * step for i in range(count)]
    values = [round(v, 10) for v in values]
    if integer:
        for v in values:
            if not float(v).is_integer() or v < 1:
                raise AnanError(
                    f"{name} must be a positive integer, got {v:g}: pass --{name} 1 or more"
                )
        return tuple(dict.fromkeys(int(v) for v in values))
    return tuple(dict.fromkeys(values))


@dataclasses.dataclass(frozen=True)
class Grid:
    """The configurations to search: numeric axes and option lists.

    Defaults are the paper's grid (Section 3.3.3) with the spec's default options.
    ``idle`` is only used by the additive rule; multiplicative configurations are not
    repeated over it.

    Example:
        >>> Grid().size
        240
        >>> Grid(k=(4,), mu=(2,), rules=("multiplicative", "additive"), idle=(0.0, 1.0)).size
        48
    """

    k: tuple[int, ...] = (4, 5, 6, 7, 8)
    mu: tuple[int, ...] = (2, 3, 4)
    a: tuple[float, ...] = (1.05, 1.2, 1.35, 1.5)
    b: tuple[float, ...] = (0.05, 0.2, 0.35, 0.5)
    idle: tuple[float, ...] = (0.0,)
    rules: tuple[Rule, ...] = ("multiplicative",)
    counters: tuple[Counter, ...] = ("absorbing",)
    signals: tuple[Signal, ...] = ("pre",)
    reduces: tuple[Reduce, ...] = ("mean",)

    def __post_init__(self) -> None:
        for name in (*_NUMBERS, *_OPTIONS):
            values = tuple(dict.fromkeys(getattr(self, name)))
            if not values:
                raise AnanError(f"the grid has no {name} values: give at least one")
            object.__setattr__(self, name, values)
        for name in ("k", "mu"):
            for v in getattr(self, name):
                if isinstance(v, bool) or not float(v).is_integer() or v < 1:
                    raise AnanError(
                        f"{name} must be a positive integer, got {v!r}: pass --{name} 1 or more"
                    )
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        for name, minimum in (("a", 0.0), ("b", 0.0), ("idle", None)):
            for v in getattr(self, name):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise AnanError(f"{name} must be a finite number, got {v!r}")
                if minimum is not None and v < minimum:
                    raise AnanError(f"{name} must be >= 0, got {v:g}: pass non-negative values")
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name, choices in _OPTIONS.items():
            for v in getattr(self, name):
                if v not in choices:
                    raise AnanError(
                        f"--{name}: {v!r} is not one of {', '.join(choices)}: pass a "
                        "comma-separated list of them"
                    )

    @classmethod
    def from_strings(cls, **texts: str | None) -> Grid:
        """A grid from command-line strings; missing axes keep the paper's values.

        Example:
            >>> Grid.from_strings(k="4,5", a="1.05:1.5:0.15", rules="additive").size
            96
        """
        kwargs: dict[str, Any] = {}
        for name, text in texts.items():
            if text is None:
                continue
            if name in _NUMBERS:
                kwargs[name] = parse_values(name, text, integer=name in ("k", "mu"))
            elif name in _OPTIONS:
                kwargs[name] = tuple(t.strip() for t in text.split(",") if t.strip())
            else:
                raise AnanError(f"unknown grid axis {name!r}")
        return cls(**kwargs)

    def option_sets(self) -> list[AnanParams]:
        """One parameter template per option combination (its numbers are the defaults)."""
        return [
            AnanParams(rule=r, counter=c, signal=s, reduce=d)
            for r, c, s, d in itertools.product(
                self.rules, self.counters, self.signals, self.reduces
            )
        ]

    def points(self, rule: str = "multiplicative") -> list[GridPoint]:
        """The numeric configurations for one rule, in grid order (k, μ, a, b, idle)."""
        idles = self.idle if rule == "additive" else self.idle[:1]
        return [
            GridPoint(k, mu, a, b, idle)
            for k, mu, a, b, idle in itertools.product(self.k, self.mu, self.a, self.b, idles)
        ]

    @property
    def size(self) -> int:
        """Number of configurations over all option combinations."""
        return sum(len(self.points(o.rule)) for o in self.option_sets())

    def as_dict(self) -> dict[str, list]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


#: The paper's grid (Section 3.3.3): 240 configurations.
PAPER_GRID = Grid()


# --- results -------------------------------------------------------------------------------


@dataclasses.dataclass
class TuneResult:
    """Every configuration's scores and the selected one.

    Attributes:
        rows: one dict per configuration (grid order): the options, k, mu, a, b, idle, the
            scores and ``value`` (the selection metric, oriented so that higher is better).
        best: the selected row.
        params: the selected parameters.
        metric: the selection metric.
        base_scores: the base CNN's scores on the same images.
        tuned_on: ``"val"``, ``"test"`` or ``"arrays"`` (images passed directly).
        n_images: images the parameters were tuned on.
        seconds: wall time of the search.
        rest_rows: runs of the rest of the network (after deduplicating gain vectors).
        info: where the images came from (split info, model path), JSON-ready.
    """

    rows: list[dict[str, Any]]
    best: dict[str, Any]
    params: AnanParams
    metric: str
    base_scores: dict[str, float]
    tuned_on: str
    n_images: int
    seconds: float
    rest_rows: int
    target_layer: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def improves_on_base(self) -> bool:
        """Whether the best configuration beats the base CNN on the tuning images."""
        from anan_onnx.evaluation.scores import select_metric_value

        base = select_metric_value(self.base_scores, self.metric)
        return bool(self.best["value"] > base)

    def summary(self) -> str:
        """A few lines for the terminal."""
        from anan_onnx.evaluation.scores import select_metric_value

        base = select_metric_value(self.base_scores, self.metric)
        sign = -1 if self.metric == "loss" else 1
        lines = [
            f"searched {len(self.rows)} configurations on {self.n_images} {self.tuned_on} "
            f"images in {self.seconds:.1f} s ({self.rest_rows} rest-of-network runs)",
            f"  best       : {self.params.describe()}",
            f"  {self.metric:<10} : ANAN {sign * self.best['value']:.4f}  base {sign * base:.4f}"
            + ("" if self.improves_on_base else "  (no configuration beats the base CNN)"),
        ]
        for key in ("balanced_accuracy", "mcc", "positive_rate"):
            if key in self.best and key != self.metric:
                lines.append(
                    f"  {key:<10} : ANAN {self.best[key]:.4f}  base {self.base_scores[key]:.4f}"
                )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The selection, JSON-ready (what :meth:`write_json` writes)."""
        from anan_onnx._version import __version__

        return {
            "tool": f"anan-onnx {__version__} tune",
            "params": self.params.as_dict(),
            "metric": self.metric,
            "tuned_on": self.tuned_on,
            "n_images": self.n_images,
            "scores": _clean({k: self.best[k] for k in SCORE_COLUMNS if k in self.best}),
            "base_scores": _clean(self.base_scores),
            "improves_on_base": self.improves_on_base,
            "configurations": len(self.rows),
            "rest_rows": self.rest_rows,
            "seconds": round(self.seconds, 3),
            "target_layer": self.target_layer,
            **self.info,
        }

    def write_json(self, path: str | Path) -> None:
        """Writes :meth:`to_json` atomically."""
        from anan_onnx.model_io import write_bytes_atomic

        text = json.dumps(self.to_json(), indent=2, default=_json_default) + "\n"
        write_bytes_atomic(text.encode(), path)

    def write_csv(self, path: str | Path) -> None:
        """Writes every configuration's scores, one row each, atomically."""
        from anan_onnx.model_io import write_bytes_atomic

        columns = ["rule", "counter", "signal", "reduce", *_NUMBERS, *SCORE_COLUMNS]
        columns += ["value", "best"]
        extra = sorted({k for r in self.rows for k in r} - set(columns) - {"n", "threshold"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, [*columns, *extra], extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({**row, "best": int(row is self.best)})
        write_bytes_atomic(buffer.getvalue().encode(), path)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def _json_default(value: object) -> object:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- the search ----------------------------------------------------------------------------


def check_labels(outputs: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> None:
    """Refuses a data set whose classes do not fit the model's output.

    Raises:
        AnanError: a sigmoid (one-column) model with more than two classes, or a softmax
            model with another number of classes than the data set.
    """
    width = 1 if outputs.ndim == 1 else int(np.prod(outputs.shape[1:]))
    n_classes = len(classes)
    shown = ", ".join(classes[:6]) + (", ..." if n_classes > 6 else "")
    if width == 1 and n_classes != 2:
        raise AnanError(
            f"the model has one output (binary, P(class 1)) but the data set has {n_classes} "
            f"classes ({shown}): pass --positive CLASS to binarise it"
        )
    if width > 1 and width != n_classes:
        raise AnanError(
            f"the model outputs {width} class probabilities but the data set has {n_classes} "
            f"classes ({shown}): use the data set the model was trained on, or --positive "
            "for a binary model"
        )
    if len(labels) == 0:
        raise AnanError("no images to score: the split is empty")


def grid_search(
    base: onnx.ModelProto,
    images: np.ndarray | LazyImages,
    labels: np.ndarray,
    grid: Grid = PAPER_GRID,
    metric: str = "f1",
    *,
    classes: Sequence[str] | None = None,
    layer: str | None = None,
    threads: int | None = None,
    batch_size: int = 256,
    progress: bool | None = None,
    engine: Engine | None = None,
) -> TuneResult:
    """Scores every configuration of ``grid`` on ``images`` and selects the best.

    The best configuration maximises ``metric`` (``loss`` is minimised); ties go to the
    lower loss, then to the first in grid order, so the choice is reproducible.

    Args:
        base: the base ONNX model (already an ANAN model is refused).
        images: the tuning images in the model's layout, or a
            :class:`~anan_onnx.evaluation.lazy_images.LazyImages` (read chunk by chunk).
        labels: their class indices.
        grid: the configurations.
        metric: ``f1`` (default), ``accuracy``, ``loss``, ``auc``, ``balanced_accuracy``
            or ``mcc``.
        classes: class names (for messages); default ``"0"``, ``"1"``, ...
        layer, threads, batch_size: see :class:`~anan_onnx.evaluation.fastgrid.FastGrid`.
        progress: tqdm bars (default: on a terminal).
        engine: where the image work runs (default: here, streaming; see
            :mod:`anan_onnx.evaluation.engine`); the result does not depend on it.

    Example:
        >>> r = grid_search(base, x_val, y_val, Grid(k=(4,), mu=(2,)))  # doctest: +SKIP
        >>> r.best["k"], r.best["f1"]  # doctest: +SKIP
    """
    from anan_onnx.evaluation.scores import METRICS, scores, select_metric_value

    if metric not in METRICS:
        raise AnanError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    _refuse_anan(base)
    labels = np.asarray(labels)
    engine = engine or LocalEngine()
    start = time.perf_counter()
    base_out = base_outputs(engine, base, images, threads, batch_size)
    classes = list(classes) if classes is not None else _default_classes(base_out)
    check_labels(base_out, labels, classes)
    base_scores = scores(labels, base_out)
    rows: list[dict[str, Any]] = []
    cache: dict[bytes, dict[str, float]] = {}  # by a digest: the outputs themselves are O(n)
    rest_rows, target_layer = 0, ""
    for options in grid.option_sets():
        fast = FastGrid(base, options, layer=layer, threads=threads, batch_size=batch_size)
        target_layer = fast.target_layer
        points = grid.points(options.rule)
        probs, runs = grid_outputs(
            engine,
            fast,
            base,
            options,
            points,
            images,
            layer=layer,
            threads=threads,
            progress=progress,
        )
        rest_rows += runs
        for point, p in zip(points, probs, strict=True):
            # many configurations give identical outputs: score once
            key = hashlib.sha256(np.ascontiguousarray(p).data).digest()
            if key not in cache:
                cache[key] = scores(labels, p)
            row: dict[str, Any] = {
                "rule": options.rule,
                "counter": options.counter,
                "signal": options.signal,
                "reduce": options.reduce,
                **dataclasses.asdict(point),
                **cache[key],
            }
            value = select_metric_value(row, metric)
            row["value"] = -math.inf if math.isnan(value) else value
            rows.append(row)
    best = _select(rows)
    params = AnanParams(**{k: best[k] for k in (*_NUMBERS, "rule", "counter", "signal", "reduce")})
    return TuneResult(
        rows=rows,
        best=best,
        params=params,
        metric=metric,
        base_scores=base_scores,
        tuned_on="arrays",
        n_images=len(labels),
        seconds=time.perf_counter() - start,
        rest_rows=rest_rows,
        target_layer=target_layer,
    )


def _select(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest value; ties: lower loss, then grid order (``max`` keeps the first)."""
    top = max(r["value"] for r in rows)
    tied = [(i, r) for i, r in enumerate(rows) if r["value"] >= top - 1e-12]
    return min(tied, key=lambda item: (item[1].get("loss", math.inf), item[0]))[1]


def _default_classes(outputs: np.ndarray) -> list[str]:
    width = 1 if outputs.ndim == 1 else int(np.prod(outputs.shape[1:]))
    return [str(i) for i in range(max(2, width))]


def _refuse_anan(model: onnx.ModelProto, path: str | Path | None = None) -> None:
    if _metadata.is_anan(_metadata.read_metadata(model)):
        where = f"{path} is" if path else "the model is"
        raise AnanError(
            f"{where} already an ANAN model: pass the base CNN (the .base.onnx written next "
            "to it by convert, or the original .keras/.onnx)"
        )


def load_model(
    path: str | Path,
    *,
    layout: str | None = None,
    scale: float | None = None,
    offset: float | None = None,
) -> onnx.ModelProto:
    """Loads a base model (``.keras``/``.h5``/``.onnx``) and refuses an ANAN model."""
    from anan_onnx.convert.pipeline import load_base
    from anan_onnx.model_io import load_onnx, model_kind

    if model_kind(path) == "onnx":
        _refuse_anan(load_onnx(path), path)
    return load_base(path, layout=layout, scale=scale, offset=offset)


def tune(
    model: str | Path,
    data: str | Path,
    *,
    grid: Grid = PAPER_GRID,
    metric: str = "f1",
    tune_on: str = "val",
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
    positive: Sequence[int | str] | None = None,
    max_per_class: int | None = None,
    layout: str | None = None,
    scale: float | None = None,
    offset: float | None = None,
    layer: str | None = None,
    threads: int | None = None,
    batch_size: int = 256,
    progress: bool | None = None,
    emit: str | Path | None = None,
    engine: Engine | None = None,
) -> TuneResult:
    """Loads a base model and a labelled image set, and grid-searches the ANAN parameters.

    The images are split by :func:`anan_onnx.load_splits` (same seed and fractions give
    the same split as ``tools/train_base_cnn.py``); parameters are tuned on the validation
    split unless ``tune_on="test"`` (which warns).

    Args:
        model: base CNN: ``.keras``, ``.h5`` or ``.onnx`` (an ANAN model is refused).
        data: image folder (class folders, or train/ and test/) or MedMNIST ``.npz``.
        grid, metric: what to search and how to select (see :func:`grid_search`).
        tune_on: ``"val"`` (default) or ``"test"``.
        val_fraction, test_fraction, seed, positive, max_per_class: see
            :func:`anan_onnx.load_splits`.
        layout, scale, offset: override the preprocessing recorded in the model.
        layer: target Conv (default: the first).
        emit: also write the tuned fixed-parameter ANAN model here (and its base model as
            ``<name>.base.onnx`` beside it, for ``anan-onnx verify``).
        engine: where the image work runs (see :func:`grid_search`).

    The images are read a chunk at a time when used (``load_splits(lazy=True)``), so memory
    does not grow with their number.

    Returns:
        The result; ``info`` holds the model path, its sha256 and the split info.
    """
    from anan_onnx.evaluation.datasets import load_splits
    from anan_onnx.runtime.inputs import InputSpec

    if tune_on not in TUNE_ON:
        raise AnanError(f"tune_on must be one of {', '.join(TUNE_ON)}, got {tune_on!r}")
    base = load_model(model, layout=layout, scale=scale, offset=offset)
    spec = InputSpec.from_metadata(_metadata.read_metadata(base))
    splits = load_splits(
        data,
        spec,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        positive=positive,
        max_per_class=max_per_class,
        progress=progress,
        lazy=True,
    )
    chosen = splits.val if tune_on == "val" else splits.test
    if chosen is None:
        hint = (
            "pass --val-fraction > 0 or add a val/ folder"
            if tune_on == "val"
            else "pass --test-fraction > 0 or add a test/ folder"
        )
        raise AnanError(f"data set {data} has no {tune_on} split to tune on: {hint}")
    if tune_on == "test":
        warnings.warn(TEST_WARNING, UserWarning, stacklevel=2)
    result = grid_search(
        base,
        chosen.images,
        chosen.labels,
        grid,
        metric,
        classes=chosen.classes,
        layer=layer,
        threads=threads,
        batch_size=batch_size,
        progress=progress,
        engine=engine,
    )
    result.tuned_on = tune_on
    result.info = {
        "model": str(model),
        "model_sha256": _metadata.sha256_file(model),
        "data": str(data),
        "grid": grid.as_dict(),
        "split": splits.info,
    }
    if emit is not None:
        emit_model(base, result, emit, source=Path(model))
    return result


def emit_model(
    base: onnx.ModelProto, result: TuneResult, output: str | Path, *, source: Path | None = None
) -> Path:
    """Writes the tuned fixed-parameter ANAN model (and its base beside it), atomically."""
    from anan_onnx.convert.pipeline import _base_path, convert_model
    from anan_onnx.model_io import check_output_path, save_atomic

    output = Path(output)
    if source is not None:
        check_output_path(source, output)
    base_output = _base_path(output)
    extra: dict[str, object] = {
        "base_model": base_output.name,
        "tuned_metric": result.metric,
        "tuned_on": result.tuned_on,
        "tuned_value": result.best["value"],
    }
    if source is not None and source.is_file():
        extra.update(source_file=source.name, source_sha256=_metadata.sha256_file(source))
    conversion = convert_model(
        base, result.params, layer=result.target_layer or None, extra_metadata=extra
    )
    save_atomic(conversion.base, base_output)
    save_atomic(conversion.anan, output)
    return output
