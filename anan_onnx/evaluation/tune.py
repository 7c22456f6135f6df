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
import json
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from anan_onnx import metadata as _metadata
from anan_onnx._public import public
from anan_onnx.convert.classes import class_count
from anan_onnx.convert.limits import input_bound_of
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.class_match import match_classes, model_classes
from anan_onnx.evaluation.engine import (
    Engine,
    GridScores,
    LocalEngine,
    grid_scores,
    model_outputs,
)
from anan_onnx.evaluation.fastgrid import FastGrid
from anan_onnx.evaluation.grid import PAPER_GRID, Grid
from anan_onnx.evaluation.lazy_images import LazyImages
from anan_onnx.evaluation.metric_names import DEFAULT_METRIC, check_metric, metric_key
from anan_onnx.evaluation.scores import present_classes, scores, select_metric_value
from anan_onnx.evaluation.statistics import BOOTSTRAP_RESAMPLES, SMALL_SAMPLE, bootstrap_intervals
from anan_onnx.evaluation.tune_result import TuneResult
from anan_onnx.gains import check_worst
from anan_onnx.model_io import check_output_path, load_onnx, model_kind, save_all_atomic
from anan_onnx.options import TUNE_ON, RunOptions, SplitOptions, check_tune_on
from anan_onnx.params import PARAMS, AnanParams
from anan_onnx.runtime.inputs import InputSpec
from anan_onnx.training_record import find_training_record, fold_of

if TYPE_CHECKING:
    from anan_onnx.convert.preprocessing import PreprocessRequest
    from anan_onnx.evaluation.class_match import ClassMap
    from anan_onnx.evaluation.datasets import SplitOptions
    from anan_onnx.runtime.inputs import InputSpec

__all__ = [
    "TEST_WARNING",
    "TUNE_ON",
    "check_labels",
    "emit_model",
    "grid_search",
    "load_model",
    "match_model_classes",
    "metric_interval",
    "tune",
]

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


@public
def grid_search(
    base: onnx.ModelProto,
    images: np.ndarray | LazyImages,
    labels: np.ndarray,
    grid: Grid = PAPER_GRID,
    metric: str = DEFAULT_METRIC,
    *,
    classes: Sequence[str] | None = None,
    class_map: ClassMap | None = None,
    interval: bool = False,
    layer: str | None = None,
    run: RunOptions | None = None,
    engine: Engine | None = None,
) -> TuneResult:
    """Scores every configuration of ``grid`` on ``images`` and selects the best.

    The best configuration maximises ``metric`` (``loss`` is minimised); ties go to the
    lower loss, then to the first in grid order, so the choice is reproducible.

    Args:
        base: the base ONNX model (already an ANAN model is refused).
        images: the tuning images in the model's layout, or a
            :class:`~anan_onnx.evaluation.lazy_images.LazyImages` (read chunk by chunk).
        labels: their class indices: model outputs, or with ``class_map`` the data set's.
        grid: the configurations.
        metric: ``f1`` (default), ``accuracy``, ``loss``, ``auc``, ``balanced_accuracy``
            or ``mcc``.
        classes: class names (for messages); default ``"0"``, ``"1"``, ...
        class_map: how the data set's classes are the model's (:mod:`class_match`); scores
            then run over the classes present.
        interval: with fewer than :data:`SMALL_SAMPLE` images, a bootstrap interval of the
            best configuration's metric, the base CNN's and their difference
            (``result.interval``), and a warning.
        layer: the target Conv (default: the first).
        run: threads, rows per run and progress bars (:class:`~anan_onnx.options.RunOptions`).
        engine: where the image work runs (default: here, streaming; see
            :mod:`anan_onnx.evaluation.engine`); the result does not depend on it.

    Example:
        >>> r = grid_search(base, x_val, y_val, Grid(k=(4,), mu=(2,)))  # doctest: +SKIP
        >>> r.best["k"], r.best["f1"]  # doctest: +SKIP
    """
    check_metric(metric)
    _refuse_anan(base)
    labels = np.asarray(labels)
    if class_map is not None:
        labels, classes = class_map.labels(labels), class_map.model_classes
    engine = engine or LocalEngine()
    run = run or RunOptions()
    threads, batch_size = run.threads, run.batch_size
    start = time.perf_counter()
    base_out = model_outputs(engine, base, images, threads, batch_size)
    classes = list(classes) if classes is not None else _default_classes(base_out)
    check_labels(base_out, labels, classes)
    present = present_classes(labels, base_out)  # the classes these images hold
    base_scores = scores(labels, base_out, classes=present)
    rows: list[dict[str, Any]] = []
    small = interval and len(labels) < SMALL_SAMPLE
    kept: dict[int, tuple[GridScores, int]] = {}  # row -> where its outputs are (small sets)
    rest_rows, target_layer = 0, ""
    for options in grid.option_sets():
        fast = FastGrid(base, options, layer=layer, threads=threads, batch_size=batch_size)
        target_layer = fast.target_layer
        points = grid.points(options.rule)
        _check_gains(base, fast, points, options)
        scored = grid_scores(
            engine,
            fast,
            base,
            options,
            points,
            images,
            (labels, present),
            layer=layer,
            threads=threads,
            progress=run.progress,
        )
        rest_rows += scored.rest_rows
        for index, (point, found) in enumerate(zip(points, scored.scores, strict=True)):
            if small:
                kept[len(rows)] = (scored, index)
            row: dict[str, Any] = {
                **{p.name: getattr(options, p.name) for p in Grid.options()},
                **dataclasses.asdict(point),
                **found,
            }
            value = select_metric_value(row, metric)
            row["value"] = -math.inf if math.isnan(value) else value
            rows.append(row)
        # else its outputs stay pinned (on Ray: in the object store) while the next option
        # set is computed, and the last one's until the end (``kept`` holds what is needed)
        del scored
    best = _select(rows, metric)
    params = AnanParams(**{p.name: best[p.name] for p in PARAMS})
    ci = None
    if small:
        where, index = kept[next(i for i, r in enumerate(rows) if r is best)]
        best_out = where.outputs(index)  # the only per-image outputs the driver receives
        ci = metric_interval(labels, best_out, base_out, metric, present)
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
        interval=ci,
    )


def metric_interval(
    labels: np.ndarray,
    anan: np.ndarray,
    base: np.ndarray,
    metric: str,
    present: Sequence[int] | None,
) -> dict[str, Any]:
    """95 % bootstrap intervals of ``metric`` for ANAN, the base CNN and their difference
    on the same resampled images, and the warning that says them."""
    key = metric_key(metric)

    def value(outputs: np.ndarray, index: np.ndarray) -> float:
        return scores(labels[index], outputs[index], classes=present, only=key)[key]

    per_draw: dict[bytes, tuple[float, float]] = {}

    def pair(index: np.ndarray) -> tuple[float, float]:
        digest = index.tobytes()  # ANAN, base and difference share each draw's two scores
        if digest not in per_draw:
            per_draw[digest] = (value(anan, index), value(base, index))
        return per_draw[digest]

    ci = bootstrap_intervals(
        len(labels),
        {
            "anan": lambda i: pair(i)[0],
            "base": lambda i: pair(i)[1],
            "difference": lambda i: pair(i)[0] - pair(i)[1],
        },
    )
    return {
        "metric": key,
        "level": 0.95,
        "method": f"percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples of the images, seed 0",
        "n_images": len(labels),
        **ci,
    }


def _check_gains(base: onnx.ModelProto, fast: FastGrid, points, options: AnanParams) -> None:
    """Refuses a grid whose largest gain overflows float32 (the check convert makes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mu > k points are legal, only warned about
        candidates = [p.params(options) for p in points]
    target = fast._target
    check_worst(
        candidates, target.weight, target.bias, x_max=input_bound_of(base), layer=fast.target_layer
    )


def _select(rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Highest value; ties: lower loss, then grid order (``max`` keeps the first).

    A configuration whose metric is undefined (NaN, kept as ``-inf``) ranks last, with a
    warning; when it is undefined for every one, there is nothing to select by: refused
    (never picked by loss in silence).
    """
    undefined = sum(1 for r in rows if r["value"] == -math.inf)
    if undefined == len(rows):
        raise AnanError(
            f"the selection metric {metric!r} is undefined (NaN) on these tuning images for "
            "every configuration (AUC needs images of every class scored): add images of the "
            "missing classes or pick another --metric (f1, accuracy, loss)"
        )
    if undefined:
        warnings.warn(
            f"the selection metric {metric!r} is undefined (NaN) for {undefined} of "
            f"{len(rows)} configurations: they rank last",
            UserWarning,
            stacklevel=3,
        )
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
    preprocess: PreprocessRequest | None = None,
) -> onnx.ModelProto:
    """Loads a base model (``.keras``/``.h5``/``.onnx``) and refuses an ANAN model;
    ``preprocess`` (and the shorthands) override its preprocessing as ``convert``'s."""
    from anan_onnx.convert.pipeline import load_base  # the converter (onnx-ir) on use

    if model_kind(path) == "onnx":
        _refuse_anan(load_onnx(path), path)
    return load_base(path, layout=layout, scale=scale, offset=offset, preprocess=preprocess)


@public
def tune(
    model: str | Path,
    data: str | Path,
    *,
    grid: Grid = PAPER_GRID,
    metric: str = DEFAULT_METRIC,
    tune_on: str = TUNE_ON[0],
    split: SplitOptions | None = None,
    run: RunOptions | None = None,
    layer: str | None = None,
    layout: str | None = None,
    scale: float | None = None,
    offset: float | None = None,
    preprocess: PreprocessRequest | None = None,
    emit: str | Path | None = None,
    emit_anyway: bool = False,
    engine: Engine | None = None,
) -> TuneResult:
    """Loads a base model and a labelled image set, and grid-searches the ANAN parameters.

    With a ``training.json`` beside the model (``research/train_base_cnn.py`` writes one), the
    validation images are that model's own validation fold, never images it was trained on.
    Otherwise the images are split by :func:`anan_onnx.load_splits` (same seed and fractions
    give the same split as ``research/train_base_cnn.py``); parameters are tuned on the
    validation split unless ``tune_on="test"`` (which warns).

    The data set's classes are matched by name with the model's
    (:mod:`~anan_onnx.evaluation.class_match`): never scored against mislabelled outputs;
    a subset of a multi-class model's classes is enough. Fewer than
    :data:`~anan_onnx.evaluation.statistics.SMALL_SAMPLE` tuning images give a warning
    with bootstrap intervals of the metric (``result.interval``).

    Args:
        model: base CNN: ``.keras``, ``.h5`` or ``.onnx`` (an ANAN model is refused).
        data: image folder (class folders, or train/ and test/) or MedMNIST ``.npz``.
        grid, metric: what to search and how to select (see :func:`grid_search`).
        tune_on: ``"val"`` (default) or ``"test"``.
        split: how ``data`` is split (:class:`~anan_onnx.options.SplitOptions`; see
            :func:`anan_onnx.load_splits`).
        run: threads, rows per run, progress bars (:class:`~anan_onnx.options.RunOptions`).
        layer: target Conv (default: the first).
        layout, scale, offset: override the preprocessing recorded in the model.
        preprocess: the whole preprocessing request, as ``convert``'s options (channel
            order, mean/std, presets, resize, aspect; the shorthands above win).
        emit: also write the tuned fixed-parameter ANAN model here (and its base model as
            ``<name>.base.onnx`` beside it, for ``anan-onnx verify``), with the model's
            class names (the data set's only for a model that records none); only when
            the best configuration beats the base CNN on the tuning images (otherwise a
            warning, and ``result.emitted`` is ``None``)...
        emit_anyway: ... or regardless.
        engine: where the image work runs (see :func:`grid_search`).

    The images are read a chunk at a time when used (``load_splits(lazy=True)``), so memory
    does not grow with their number.

    Returns:
        The result; ``info`` holds the model path, its sha256 and the split info.
    """
    from anan_onnx.evaluation.datasets import SplitOptions, load_with
    from anan_onnx.runtime.inputs import InputSpec

    check_tune_on(tune_on)
    base = load_model(model, layout=layout, scale=scale, offset=offset, preprocess=preprocess)
    spec = InputSpec.from_metadata(_metadata.read_metadata(base))
    split, run = split or SplitOptions(), run or RunOptions()
    recorded = _recorded_split(Path(model), Path(data), spec, tune_on, split, run.progress)
    if recorded is not None:
        chosen, split_info = recorded
    else:
        splits = load_with(split, data, spec, progress=run.progress, lazy=True)
        chosen = splits.val if tune_on == "val" else splits.test
        split_info = splits.info
    if chosen is None:
        hint = (
            "pass --val-fraction > 0 or add a val/ folder"
            if tune_on == "val"
            else "pass --test-fraction > 0 or add a test/ folder"
        )
        raise AnanError(f"data set {data} has no {tune_on} split to tune on: {hint}")
    if tune_on == "test":
        warnings.warn(TEST_WARNING, UserWarning, stacklevel=2)
    class_map = match_model_classes(base, model, chosen.classes, split.positive is not None)
    result = grid_search(
        base,
        chosen.images,
        chosen.labels,
        grid,
        metric,
        class_map=class_map,
        interval=True,
        layer=layer,
        run=run,
        engine=engine,
    )
    result.tuned_on = tune_on
    result.info = {
        "model": str(model),
        "model_sha256": _metadata.sha256_file(model),
        "data": str(data),
        "grid": grid.as_dict(),
        "split": split_info,
        "classes": class_map.classes_to_record(),
        "class_map": {**class_map.to_json(), "note": class_map.note},
    }
    if result.interval is not None:
        warnings.warn(result.interval_text(), UserWarning, stacklevel=2)
    if emit is not None:
        if result.improves_on_base or emit_anyway:
            result.emitted = emit_model(base, result, emit, source=Path(model))
        else:
            warnings.warn(
                f"{emit} was not written: no configuration beats the base CNN on the "
                f"{result.tuned_on} images ({result.metric}); pass --emit-anyway "
                "(emit_anyway=True) to write it regardless",
                UserWarning,
                stacklevel=2,
            )
    return result


def match_model_classes(
    base: onnx.ModelProto, source: str | Path, data_classes: Sequence[str], binarised: bool
) -> ClassMap:
    """How the data set's classes are ``base``'s outputs (see :mod:`class_match`)."""
    names = model_classes(_metadata.read_metadata(base), source)
    return match_classes(names, data_classes, class_count(base), binarised=binarised)


def _recorded_split(
    model: Path,
    data: Path,
    spec: InputSpec,
    tune_on: str,
    split: SplitOptions,
    progress: bool | None,
) -> tuple[Any, dict[str, Any]] | None:
    """The tuning images from the ``training.json`` beside ``model``: its own validation
    fold, never images it was trained on (``None`` without a usable record)."""
    from anan_onnx.evaluation.fold_data import FoldData

    record = find_training_record(model)
    if record is None:
        return None
    fold = fold_of(model, record) or {}
    if tune_on == "val" and not fold.get("val_indices"):
        warnings.warn(
            f"{record['record_file']} records no validation images for {model.name}: the "
            "validation split is drawn afresh and may hold images the model was trained on",
            UserWarning,
            stacklevel=3,
        )
        return None
    val, test = FoldData([model], data, split, progress).splits(model, spec, tune_on == "val")
    chosen = val if tune_on == "val" else test
    if chosen is None:  # splits() loads the validation images when asked: not reached
        return None
    info = {"method": "training.json", "record": record["record_file"], tune_on: chosen.source}
    return chosen, info


def emit_model(
    base: onnx.ModelProto, result: TuneResult, output: str | Path, *, source: Path | None = None
) -> Path:
    """Writes the tuned fixed-parameter ANAN model (and its base beside it), atomically."""
    from anan_onnx.convert.pipeline import base_path, convert_model  # onnx-ir on use

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
    if result.info.get("classes"):
        extra["classes"] = json.dumps(result.info["classes"])
    conversion = convert_model(
        base, result.params, layer=result.target_layer or None, extra_metadata=extra
    )
    if "classes" in extra:  # the base beside it names the same outputs
        _metadata.write_metadata(conversion.base, {"classes": extra["classes"]})
    # both or neither: an ANAN model never lands without the base model it names
    save_all_atomic([(conversion.base, base_output), (conversion.anan, output)])
    return output
