"""Base CNN vs ANAN vs a threshold-tuned control on a test set, for one model or k folds.

For every model (one file, or the fold models of a directory) the protocol is:

1. the **base** CNN is scored on the test images (threshold 0.5 / arg-max);
2. the **control**: the same base CNN with only its decision rule tuned on the validation
   images (the threshold of a sigmoid output; class weights of a softmax output), scored on
   the test images. It shows how much of an ANAN gain a free decision-threshold change
   would give too;
3. each **ANAN variant** (one per option combination, e.g. the multiplicative and the additive
   rule): its parameters are grid-searched on the same validation images (or read from a
   params JSON), the fixed-parameter ANAN model is exported and scored on the test images.

Over several fold models, each metric is compared with the paired two-sided Wilcoxon
signed-rank test (ANAN vs base, ANAN vs control), as in the paper's Table 3. Scores include
the positive rate, balanced accuracy and MCC next to F1, so that an F1 gain that only comes
from predicting one class more often is visible; a shift of the positive rate by more than
10 points is flagged.

Validation data per fold: when the model folder holds ``training.json`` (written by
``research/train_base_cnn.py``), each fold is tuned on its own held-out fold (``val_indices``)
and tested on the recorded test files; otherwise one split is drawn by
:func:`anan_onnx.load_splits` and shared by all models.

Example:
    >>> ev = evaluate("out/fire_folds", "../shared/data/fire",
    ...               grid=Grid(rules=("multiplicative", "additive")))  # doctest: +SKIP
    >>> print(ev.markdown())  # doctest: +SKIP
    >>> ev.figure("out/fire.png")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from anan_onnx import metadata as _metadata
from anan_onnx._public import public
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.control import control
from anan_onnx.evaluation.engine import Engine, LocalEngine, model_outputs
from anan_onnx.evaluation.fold_data import FoldData
from anan_onnx.evaluation.grid import PAPER_GRID, Grid
from anan_onnx.evaluation.layer_search import layer_names
from anan_onnx.evaluation.metric_names import DEFAULT_METRIC, check_metric, metric_key
from anan_onnx.evaluation.model_files import find_models, read_params
from anan_onnx.evaluation.results import LAYER_SEPARATOR, Evaluation
from anan_onnx.evaluation.scores import present_classes, scores, select_metric_value
from anan_onnx.evaluation.tune import (
    TEST_WARNING,
    check_labels,
    grid_search,
    load_model,
    match_model_classes,
)
from anan_onnx.options import TUNE_ON, RunOptions, SplitOptions, check_tune_on
from anan_onnx.params import AnanParams
from anan_onnx.runtime.inputs import InputSpec

if TYPE_CHECKING:
    from anan_onnx.convert.preprocessing import PreprocessRequest

__all__ = ["evaluate"]


# --- the variants ------------------------------------------------------------------------


@dataclasses.dataclass
class _Variant:
    """An ANAN variant: its options, and fixed parameters or a grid to tune."""

    key: str
    label: str
    grid: Grid | None
    fixed: AnanParams | None
    layer: str | None = None  # the target Conv, where each layer is a variant (--layers)


def _per_layer(variants: list[_Variant], names: list[str]) -> list[_Variant]:
    """Each variant once per layer (``evaluate --layers``): keys ``KEY@LAYER``."""
    return [
        dataclasses.replace(
            v, key=f"{v.key}{LAYER_SEPARATOR}{name}", label=f"{v.label} @ {name}", layer=name
        )
        for name in names
        for v in variants
    ]


def _variants(grid: Grid, params: Sequence[AnanParams]) -> list[_Variant]:
    if params:
        out, seen = [], set()
        for p in params:
            key = _options_key(p)
            if key in seen:
                key = f"{key}:{p.k},{p.mu},{p.a:g},{p.b:g}"
            seen.add(key)
            out.append(_Variant(key, f"ANAN ({key})", None, p))
        return out
    out = []
    for options in grid.option_sets():
        key = _options_key(options)
        sub = dataclasses.replace(
            grid, **{q.axis: (getattr(options, q.name),) for q in Grid.options()}
        )
        out.append(_Variant(key, f"ANAN ({key})", sub, None))
    return out


def _options_key(p: AnanParams) -> str:
    """The rule, plus any option that differs from the spec's defaults."""
    rule, *others = Grid.options()
    parts = [getattr(p, rule.name)]
    parts += [getattr(p, q.name) for q in others if getattr(p, q.name) != q.default]
    return ",".join(parts)


# --- the per-fold loop -------------------------------------------------------------------


@public
def evaluate(
    models: str | Path,
    data: str | Path | None = None,
    *,
    params: Sequence[AnanParams | str | Path] = (),
    grid: Grid = PAPER_GRID,
    metric: str = DEFAULT_METRIC,
    tune_on: str = TUNE_ON[0],
    split: SplitOptions | None = None,
    run: RunOptions | None = None,
    layer: str | None = None,
    layers: str | None = None,
    log: Any = None,
    engine: Engine | None = None,
    preprocess: PreprocessRequest | None = None,
) -> Evaluation:
    """Evaluates base vs control vs ANAN on the test images, per model.

    Args:
        models: a base model file, or a folder of fold models (``fold1.onnx`` ...).
        data: the image set; optional when ``training.json`` records it.
        params: fixed ANAN parameters (``AnanParams`` or params JSON files), one variant
            each; default: tune each option combination of ``grid`` per model.
        grid, metric: what to tune and the selection metric (as ``anan-onnx tune``).
        tune_on: ``"val"`` (default) or ``"test"`` (warns: optimistic).
        split: how to split ``data`` when no ``training.json`` is found
            (:class:`~anan_onnx.options.SplitOptions`; see :func:`anan_onnx.load_splits`).
        run: threads, rows per run, progress bars (:class:`~anan_onnx.options.RunOptions`).
        layer: the target Conv (default: the first).
        layers: one ANAN variant per Conv instead (``all``, ``first:N`` or names, resolved on
            the first model): each is tuned and tested on its own, and the paired tests
            are Holm-corrected across them (:meth:`Evaluation.tests`).
        log: a callable receiving one progress line per model (e.g. ``print``).
        engine: where the work runs (default: here, reading the images a chunk at a time;
            see :mod:`anan_onnx.evaluation.engine`). A distributed engine gets one task per
            fold model when there are several, else shards of the one model's images; the
            result does not depend on it.
        preprocess: overrides each model's preprocessing, as ``convert``'s options.

    Returns:
        An :class:`Evaluation`.
    """

    check_metric(metric)
    check_tune_on(tune_on)
    engine = engine or LocalEngine()
    fixed = [p if isinstance(p, AnanParams) else read_params(p) for p in params]
    variants = _variants(grid, fixed)
    files = find_models(models)
    if layers is not None:
        if layer is not None:
            raise AnanError("--layer and --layers both given: pass one of them")
        variants = _per_layer(variants, layer_names(load_model(files[0]), layers))
    run = run or RunOptions()
    folder = Path(data) if data is not None else None
    source = FoldData(files, folder, split or SplitOptions(), run.progress)
    if tune_on == "test":  # ANAN (unless --params) and the control are fitted to the test set
        warnings.warn(TEST_WARNING, UserWarning, stacklevel=2)
    job = _FoldJob(source, variants, tune_on, metric, layer, run, preprocess)
    if engine.name != "local" and len(files) > 1:
        # whole fold models as tasks: each is computed there as locally, so the same bytes
        threads_per_task = run.threads or getattr(engine, "threads", None)
        spread = dataclasses.replace(
            job, run=dataclasses.replace(run, threads=threads_per_task, progress=False)
        )
        folds = engine.map(_fold_task, spread, files)
        for fold in folds:
            if log is not None:
                log(_fold_line(fold, variants, metric))
    else:
        folds = []
        for path in files:
            folds.append(_evaluate_fold(path, job, engine))
            if log is not None:
                log(_fold_line(folds[-1], variants, metric))
    labels = {"base": "CNN", "control": "control (threshold)"}
    labels.update({v.key: v.label for v in variants})
    info = {
        "models": [str(f) for f in files],
        "data": str(data) if data is not None else None,
        "grid": grid.as_dict() if not fixed else None,
        "variants": {v.key: v.label for v in variants},
    }
    return Evaluation(folds, labels, metric, "params" if fixed else tune_on, info)


@dataclasses.dataclass
class _FoldJob:
    """What every fold model is evaluated with (picklable: a fold may run on a worker)."""

    source: FoldData
    variants: list[_Variant]
    tune_on: str
    metric: str
    layer: str | None
    run: RunOptions
    preprocess: PreprocessRequest | None = None


def _fold_task(job: _FoldJob, path: Path) -> dict[str, Any]:
    """One fold on a worker of a distributed engine, computed there as locally."""
    return _evaluate_fold(path, job, LocalEngine())


def _evaluate_fold(path: Path, job: _FoldJob, engine: Engine) -> dict[str, Any]:
    """Base, control and every ANAN variant of one model, scored on its test images."""
    base = load_model(path, preprocess=job.preprocess)
    spec = InputSpec.from_metadata(_metadata.read_metadata(base))
    val, test = job.source.splits(path, spec, need_val=job.tune_on == "val")
    tune_split = test if job.tune_on == "test" else val
    assert tune_split is not None
    # matched before any image is run: a mislabelled data set is refused within seconds
    classes = match_model_classes(base, path, test.classes, job.source.options.positive is not None)
    y_tune, y_test = classes.labels(tune_split.labels), classes.labels(test.labels)
    base_tune = model_outputs(engine, base, tune_split.images, job.run.threads, job.run.batch_size)
    base_test = model_outputs(engine, base, test.images, job.run.threads, job.run.batch_size)
    check_labels(base_test, y_test, classes.model_classes)
    check_labels(base_tune, y_tune, classes.model_classes)
    # the control's threshold is tuned on the same images as ANAN's parameters
    rule, control_scores = control(y_tune, base_tune, base_test, y_test, job.metric)
    # per split: the classes it has images of (a class absent from test/ is not averaged in)
    present, present_tune = present_classes(y_test, base_test), present_classes(y_tune, base_tune)
    fold: dict[str, Any] = {
        "name": path.name[: -len(path.suffix)],
        "model": str(path),
        "n_val": len(val.labels) if val is not None else 0,
        "n_test": len(test.labels),
        "n_tune": len(tune_split.labels),
        "tune_source": tune_split.source,
        "test_source": test.source,
        "control": rule,
        "classes": {**classes.to_json(), "note": classes.note},
        "params": {},
        "tuning": {},
        "scores": {"base": scores(y_test, base_test, classes=present), "control": control_scores},
        "tune_scores": {"base": scores(y_tune, base_tune, classes=present_tune)},
    }
    for variant in job.variants:
        if variant.fixed is not None:
            chosen = variant.fixed
        else:
            assert variant.grid is not None
            result = grid_search(
                base,
                tune_split.images,
                tune_split.labels,
                variant.grid,
                job.metric,
                class_map=classes,
                layer=variant.layer or job.layer,
                run=job.run,
                engine=engine,
            )
            chosen = result.params
            fold["tuning"][variant.key] = {
                "seconds": round(result.seconds, 2),
                "configurations": len(result.rows),
                "value": result.best["value"],
                "base_value": _oriented(result.base_scores, job.metric),
                "improves_on_base": result.improves_on_base,
            }
        anan = _convert(base, chosen, variant.layer or job.layer)
        fold["params"][variant.key] = chosen.as_dict()
        fold["scores"][variant.key] = scores(
            y_test,
            model_outputs(engine, anan, test.images, job.run.threads, job.run.batch_size),
            classes=present,
        )
        fold["tune_scores"][variant.key] = scores(
            y_tune,
            model_outputs(engine, anan, tune_split.images, job.run.threads, job.run.batch_size),
            classes=present_tune,
        )
    return fold


def _oriented(values: dict[str, float], metric: str) -> float:
    return select_metric_value(values, metric)


def _convert(base: onnx.ModelProto, params: AnanParams, layer: str | None) -> onnx.ModelProto:
    from anan_onnx.convert.pipeline import convert_model  # the converter (onnx-ir) on use

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mu > k is reported by the tuner, not per fold
        return convert_model(base, params, layer=layer).anan


def _fold_line(fold: dict[str, Any], variants: list[_Variant], metric: str) -> str:
    key = metric_key(metric)
    s = fold["scores"]
    parts = [
        f"{fold['name']}: {metric} CNN {s['base'][key]:.3f}",
        f"control {s['control'][key]:.3f}",
    ]
    for v in variants:
        p = fold["params"][v.key]
        parts.append(
            f"{v.key} {s[v.key][key]:.3f} (k={p['k']} mu={p['mu']} a={p['a']:g} b={p['b']:g})"
        )
    return ", ".join(parts)
