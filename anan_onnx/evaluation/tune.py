"""Grid search of the ANAN parameters on a validation split (the paper's Section 3.3.3).

The grid (:mod:`anan_onnx.evaluation.grid`) defaults to the paper's 240 configurations. Each
option combination (rule, counter, signal, reduce) given is
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
    >>> result.write("out/tune")  # grid.csv and best.json  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
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
from anan_onnx.evaluation.fastgrid import FastGrid
from anan_onnx.evaluation.grid import PAPER_GRID, Grid
from anan_onnx.evaluation.metric_names import check_metric
from anan_onnx.evaluation.tune_result import TuneResult
from anan_onnx.params import PARAMS, AnanParams
from anan_onnx.runtime.batched import predict_batched

__all__ = [
    "TEST_WARNING",
    "TUNE_ON",
    "check_labels",
    "emit_model",
    "grid_search",
    "load_model",
    "tune",
]

#: Where parameters may be tuned.
TUNE_ON: tuple[str, ...] = ("val", "test")
TEST_WARNING = (
    "tuning on the test split: the parameters are chosen to fit these very images, so test "
    "scores of the tuned model are optimistically biased and cannot be compared with the "
    "base CNN's; tune on a validation split (--tune-on val) for honest estimates"
)


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
    images: np.ndarray,
    labels: np.ndarray,
    grid: Grid = PAPER_GRID,
    metric: str = "f1",
    *,
    classes: Sequence[str] | None = None,
    layer: str | None = None,
    threads: int | None = None,
    batch_size: int = 256,
    progress: bool | None = None,
) -> TuneResult:
    """Scores every configuration of ``grid`` on ``images`` and selects the best.

    The best configuration maximises ``metric`` (``loss`` is minimised); ties go to the
    lower loss, then to the first in grid order, so the choice is reproducible.

    Args:
        base: the base ONNX model (already an ANAN model is refused).
        images: the tuning images in the model's layout.
        labels: their class indices.
        grid: the configurations.
        metric: ``f1`` (default), ``accuracy``, ``loss``, ``auc``, ``balanced_accuracy``
            or ``mcc``.
        classes: class names (for messages); default ``"0"``, ``"1"``, ...
        layer, threads, batch_size: see :class:`~anan_onnx.evaluation.fastgrid.FastGrid`.
        progress: tqdm bars (default: on a terminal).

    Example:
        >>> r = grid_search(base, x_val, y_val, Grid(k=(4,), mu=(2,)))  # doctest: +SKIP
        >>> r.best["k"], r.best["f1"]  # doctest: +SKIP
    """
    from anan_onnx.evaluation.scores import scores, select_metric_value

    check_metric(metric)
    _refuse_anan(base)
    labels = np.asarray(labels)
    start = time.perf_counter()
    base_out = predict_batched(base, images, threads=threads, batch_size=batch_size)
    classes = list(classes) if classes is not None else _default_classes(base_out)
    check_labels(base_out, labels, classes)
    base_scores = scores(labels, base_out)
    rows: list[dict[str, Any]] = []
    cache: dict[bytes, dict[str, float]] = {}
    rest_rows, target_layer = 0, ""
    for options in grid.option_sets():
        fast = FastGrid(base, options, layer=layer, threads=threads, batch_size=batch_size)
        target_layer = fast.target_layer
        points = grid.points(options.rule)
        _check_gains(base, fast, points, options)
        probs = fast.predict(images, points, progress=progress)
        rest_rows += fast.stats["rest_rows"]
        for point, p in zip(points, probs, strict=True):
            key = p.tobytes()  # many configurations give identical outputs: score once
            if key not in cache:
                cache[key] = scores(labels, p)
            row: dict[str, Any] = {
                **{p.name: getattr(options, p.name) for p in Grid.options()},
                **dataclasses.asdict(point),
                **cache[key],
            }
            value = select_metric_value(row, metric)
            row["value"] = -math.inf if math.isnan(value) else value
            rows.append(row)
    best = _select(rows)
    params = AnanParams(**{p.name: best[p.name] for p in PARAMS})
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


def _check_gains(base: onnx.ModelProto, fast: FastGrid, points, options: AnanParams) -> None:
    """Refuses a grid whose largest gain overflows float32 (the check convert makes)."""
    from anan_onnx.convert.limits import input_bound_of
    from anan_onnx.gains import check_worst

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mu > k points are legal, only warned about
        candidates = [p.params(options) for p in points]
    target = fast._target
    check_worst(
        candidates, target.weight, target.bias, x_max=input_bound_of(base), layer=fast.target_layer
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

    Returns:
        The result; ``info`` holds the model path, its sha256 and the split info.
    """
    from anan_onnx.evaluation.datasets import SplitOptions
    from anan_onnx.runtime.inputs import InputSpec

    if tune_on not in TUNE_ON:
        raise AnanError(f"tune_on must be one of {', '.join(TUNE_ON)}, got {tune_on!r}")
    base = load_model(model, layout=layout, scale=scale, offset=offset)
    spec = InputSpec.from_metadata(_metadata.read_metadata(base))
    split = SplitOptions(val_fraction, test_fraction, seed, positive, max_per_class, progress)
    splits = split.load(data, spec)
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
    from anan_onnx.convert.pipeline import base_path, convert_model
    from anan_onnx.model_io import check_output_path, save_all_atomic

    output = Path(output)
    if source is not None:
        check_output_path(source, output)
    base_output = base_path(output)
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
    # both or neither: an ANAN model never lands without the base model it names
    save_all_atomic([(conversion.base, base_output), (conversion.anan, output)])
    return output
