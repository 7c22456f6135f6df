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
``tools/train_base_cnn.py``), each fold is tuned on its own held-out fold (``val_indices``)
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
import json
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from anan_onnx import metadata as _metadata
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.tune import (
    PAPER_GRID,
    TEST_WARNING,
    TUNE_ON,
    Grid,
    check_labels,
    grid_search,
    load_model,
)
from anan_onnx.params import AnanParams

__all__ = [
    "REPORT_METRICS",
    "Evaluation",
    "evaluate",
    "find_models",
    "read_params",
]

#: Metrics reported per model (the paper's loss, accuracy, F1, plus imbalance-aware ones).
REPORT_METRICS: tuple[str, ...] = (
    "loss",
    "accuracy",
    "f1",
    "balanced_accuracy",
    "mcc",
    "roc_auc",
    "positive_rate",
)
_NAMES = {
    "loss": "Loss",
    "accuracy": "Accuracy",
    "f1": "F1",
    "balanced_accuracy": "Balanced acc.",
    "mcc": "MCC",
    "roc_auc": "ROC-AUC",
    "positive_rate": "Positive rate",
}
#: A change of the predicted-positive share larger than this is flagged (10 points).
SHIFT_FLAG = 0.10
_MODEL_SUFFIXES = (".onnx", ".keras", ".h5")
_THRESHOLD_METRICS = ("f1", "accuracy", "balanced_accuracy", "mcc")


# --- inputs --------------------------------------------------------------------------------


def find_models(path: str | Path) -> list[Path]:
    """The model files to evaluate: ``path`` itself, or the fold models in a folder.

    In a folder, ``fold{i}.*`` files are taken in fold order (``.onnx`` preferred over
    ``.keras``/``.h5`` of the same fold: it is the same model, already exported); without
    fold files, every base model file in it. ANAN models (``*.anan.onnx``) are skipped.

    Raises:
        AnanError: nothing to evaluate.
    """
    path = Path(path)
    if not path.exists():
        raise AnanError(f"{path}: no such model file or folder: check the path")
    if path.is_file():
        return [path]
    files = [
        f
        for f in sorted(path.iterdir())
        if f.is_file() and f.suffix.lower() in _MODEL_SUFFIXES and not f.name.endswith(".anan.onnx")
    ]
    by_stem: dict[str, Path] = {}
    for f in files:  # one file per model: .onnx wins
        stem = f.name[: -len(f.suffix)]
        if stem not in by_stem or f.suffix.lower() == ".onnx":
            by_stem[stem] = f
    folds = {s: f for s, f in by_stem.items() if re.fullmatch(r"fold\d+", s)}
    chosen = folds or {s: f for s, f in by_stem.items() if not s.endswith(".base")}
    if not chosen:
        raise AnanError(
            f"folder {path} holds no model files (.onnx, .keras, .h5): pass a model or a "
            "folder of fold models"
        )
    return [chosen[s] for s in sorted(chosen, key=_natural)]


def _natural(text: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def read_params(path: str | Path) -> AnanParams:
    """ANAN parameters from a JSON file: a ``tune`` result (``best.json``) or a plain dict.

    Example:
        >>> read_params("out/tune/best.json").k  # doctest: +SKIP
        4
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AnanError(f"params file {path} does not exist: check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnanError(
            f"params file {path} is not readable JSON ({exc}): pass best.json"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        data = data["params"]
    fields = {f.name for f in dataclasses.fields(AnanParams)}
    if not isinstance(data, dict) or not {"k", "mu", "a", "b"} <= set(data):
        raise AnanError(
            f"params file {path} has no k, mu, a, b: pass the best.json written by anan-onnx tune"
        )
    return AnanParams(**{k: v for k, v in data.items() if k in fields})


@dataclasses.dataclass
class _Variant:
    """An ANAN variant: its options, and fixed parameters or a grid to tune."""

    key: str
    label: str
    grid: Grid | None
    fixed: AnanParams | None


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
            grid,
            rules=(options.rule,),
            counters=(options.counter,),
            signals=(options.signal,),
            reduces=(options.reduce,),
        )
        out.append(_Variant(key, f"ANAN ({key})", sub, None))
    return out


def _options_key(p: AnanParams) -> str:
    """The rule, plus any option that differs from the spec's defaults."""
    default = AnanParams()
    parts = [p.rule]
    parts += [
        getattr(p, name)
        for name in ("counter", "signal", "reduce")
        if getattr(p, name) != getattr(default, name)
    ]
    return ",".join(parts)


@dataclasses.dataclass
class _Split:
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    source: str


class _Data:
    """Validation and test images for each model, from training.json or load_splits."""

    def __init__(self, models: list[Path], data: Path | None, options: dict[str, Any]) -> None:
        self.models = models
        self.data = data
        self.options = options
        self.records = {m: _training_record(m) for m in models}
        self._cache: dict[Any, Any] = {}

    def splits(self, model: Path, spec: Any, need_val: bool) -> tuple[_Split | None, _Split]:
        record = self.records[model]
        if record is not None:
            return self._from_record(model, record, spec, need_val)
        return self._from_loader(spec, need_val)

    def _from_loader(self, spec: Any, need_val: bool) -> tuple[_Split | None, _Split]:
        from anan_onnx.evaluation.datasets import load_splits

        if self.data is None:
            raise AnanError(
                "no data set given and no training.json next to the models: pass the data set"
            )
        key = ("loader", spec)
        if key not in self._cache:
            o = self.options
            self._cache[key] = load_splits(
                self.data,
                spec,
                val_fraction=o["val_fraction"],
                test_fraction=o["test_fraction"],
                seed=o["seed"],
                positive=o["positive"],
                max_per_class=o["max_per_class"],
                progress=o["progress"],
            )
        splits = self._cache[key]
        if splits.test is None:
            raise AnanError(
                f"data set {self.data} has no test split: pass --test-fraction > 0 or add test/"
            )
        if need_val and splits.val is None:
            raise AnanError(
                f"data set {self.data} has no validation split to tune on: pass "
                "--val-fraction > 0 or add a val/ folder"
            )
        how = splits.info.get("split", {})
        val = (
            _Split(splits.val.images, splits.val.labels, splits.val.classes, how.get("val", "val"))
            if splits.val is not None
            else None
        )
        test = _Split(
            splits.test.images, splits.test.labels, splits.test.classes, how.get("test", "test")
        )
        return val, test

    def _from_record(
        self, model: Path, record: dict[str, Any], spec: Any, need_val: bool
    ) -> tuple[_Split | None, _Split]:
        recorded = record.get("data_root")
        root = self.data or (Path(recorded) if recorded else None)
        if root is None:
            raise AnanError(
                f"training.json of {model.name} records no data_root: pass the data set"
            )
        if not root.is_dir():
            raise AnanError(f"data folder {root} not found: pass the data set the models used")
        classes = list(record.get("classes") or [])
        train_files = list(record.get("train_files") or [])
        train_labels = np.asarray(record.get("train_labels") or [], np.int64)
        fold = _fold_of(model, record)
        val = None
        if need_val:
            indices = np.asarray((fold or {}).get("val_indices") or [], np.int64)
            if len(indices) == 0:
                raise AnanError(
                    f"training.json records no validation images for {model.name}: pass "
                    "--params, or evaluate a folder without training.json"
                )
            if indices.max() >= len(train_files) or len(train_labels) != len(train_files):
                raise AnanError(
                    f"training.json of {model.name} does not match its file lists: re-train"
                )
            val = self._load(
                root,
                [train_files[i] for i in indices],
                train_labels[indices],
                classes,
                spec,
                f"fold {fold.get('fold', '?') if fold else '?'} validation (training.json)",
            )
        test_files = list(record.get("test_files") or [])
        if not test_files:
            raise AnanError(
                f"training.json of {model.name} records no test images: train with a test split"
            )
        test = self._load(
            root,
            test_files,
            np.asarray(record.get("test_labels"), np.int64),
            classes,
            spec,
            "test (training.json)",
        )
        return val, test

    def _load(
        self,
        root: Path,
        files: list[str],
        labels: np.ndarray,
        classes: list[str],
        spec: Any,
        source: str,
    ) -> _Split:
        from anan_onnx.evaluation.datasets import _positive_indices
        from anan_onnx.runtime.images import load_images

        key = (tuple(files), spec)
        if key not in self._cache:
            images, _, _ = load_images(
                [root / f for f in files], spec, progress=self.options["progress"], desc=source
            )
            self._cache[key] = images
        if len(labels) != len(files):
            raise AnanError(f"training.json has {len(labels)} labels for {len(files)} files")
        positive = self.options["positive"]
        if positive is not None:
            index = _positive_indices(positive, classes, root)
            labels = np.isin(labels, index).astype(np.int64)
            classes = ["negative", "positive"]
        return _Split(self._cache[key], labels, classes, source)


def _training_record(model: Path) -> dict[str, Any] | None:
    """``training.json`` beside a fold model, or ``<stem>.training.json`` beside a model."""
    stem = model.name[: -len(model.suffix)]
    for candidate in (model.with_name(f"{stem}.training.json"), model.with_name("training.json")):
        if candidate.is_file():
            try:
                record = json.loads(candidate.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise AnanError(
                    f"{candidate} is not readable JSON ({exc}): fix or remove it"
                ) from None
            if candidate.name == "training.json" and _fold_of(model, record) is None:
                continue  # a training.json about other models
            return record
    return None


def _fold_of(model: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    stem = model.name[: -len(model.suffix)]
    folds = record.get("folds") or []
    for fold in folds:
        name = str(fold.get("model", ""))
        if name[: -len(Path(name).suffix) or None] == stem:
            return fold
    return folds[0] if len(folds) == 1 and not re.fullmatch(r"fold\d+", stem) else None


# --- the control ---------------------------------------------------------------------------


def _control(
    y_val: np.ndarray, p_val: np.ndarray, p_test: np.ndarray, y_test: np.ndarray, metric: str
) -> tuple[dict[str, Any], dict[str, float]]:
    """Tunes the base CNN's decision rule on validation data; returns (rule, test scores)."""
    from anan_onnx.evaluation.metrics import binary_scores, multiclass_scores, tune_threshold

    chosen = metric if metric in _THRESHOLD_METRICS else "f1"
    if p_val.ndim == 1 or p_val.shape[1] == 1:
        t = tune_threshold(y_val, p_val.reshape(-1), chosen)
        rule = {"kind": "threshold", "threshold": t, "metric": chosen}
        return rule, binary_scores(y_test, p_test.reshape(-1), t)
    if p_val.shape[1] == 2:  # threshold on P(class 1), as class weights (t, 1 - t)
        t = tune_threshold(y_val, p_val[:, 1], chosen)
        weights = np.array([t, 1.0 - t])
    else:
        weights = _class_weights(y_val, p_val, chosen)
    rule = {"kind": "class_weights", "weights": weights.tolist(), "metric": chosen}
    q = p_test * weights
    return rule, multiclass_scores(y_test, q / q.sum(axis=1, keepdims=True))


def _class_weights(y: np.ndarray, p: np.ndarray, metric: str) -> np.ndarray:
    """Per-class weights on the probabilities (arg-max of p·w), by coordinate ascent."""
    n_classes = p.shape[1]
    candidates = np.exp(np.linspace(-3, 3, 25))
    weights = np.ones(n_classes)
    best = _argmax_metric(y, (p * weights).argmax(axis=1), n_classes, metric)
    for _ in range(3):
        improved = False
        for c in range(n_classes):
            for w in candidates:
                trial = weights.copy()
                trial[c] = w
                value = _argmax_metric(y, (p * trial).argmax(axis=1), n_classes, metric)
                if value > best + 1e-12:
                    best, weights, improved = value, trial, True
        if not improved:
            break
    return weights / weights.max()


def _argmax_metric(y: np.ndarray, pred: np.ndarray, n: int, metric: str) -> float:
    """Accuracy, macro F1, balanced accuracy or MCC from a confusion matrix (fast)."""
    cm = np.bincount(y * n + pred, minlength=n * n).reshape(n, n).astype(np.float64)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            return float(tp.sum() / cm.sum())
        if metric == "f1":
            return float(np.nan_to_num(2 * tp / (support + predicted)).mean())
        if metric == "balanced_accuracy":
            present = support > 0
            return float((tp[present] / support[present]).mean())
        total = cm.sum()
        cov = tp.sum() * total - predicted @ support
        denominator = math.sqrt((total**2 - predicted @ predicted) * (total**2 - support @ support))
        return float(cov / denominator) if denominator else 0.0


# --- evaluation ----------------------------------------------------------------------------


@dataclasses.dataclass
class Evaluation:
    """Results of :func:`evaluate`.

    Attributes:
        folds: per model: name, file, images, the control's rule, per-variant parameters and
            tuning summary, and ``scores[model_key][metric]`` on the test images.
        labels: model key → display name (``base``, ``control``, then the ANAN variants).
        metric: the selection metric.
        tuned_on: ``"val"``, ``"test"`` or ``"params"`` (given parameters).
        info: data set, grid, options.
    """

    folds: list[dict[str, Any]]
    labels: dict[str, str]
    metric: str
    tuned_on: str
    info: dict[str, Any]

    @property
    def variants(self) -> list[str]:
        """Keys of the ANAN variants."""
        return [k for k in self.labels if k not in ("base", "control")]

    def values(self, model: str, metric: str) -> np.ndarray:
        """Per-fold test values of a metric for a model key."""
        return np.array([f["scores"][model].get(metric, math.nan) for f in self.folds], float)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """model → metric → mean, std (over folds) and per-fold values."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for model in self.labels:
            out[model] = {}
            for metric in self.metrics:
                v = self.values(model, metric)
                out[model][metric] = {
                    "mean": float(np.nanmean(v)) if np.isfinite(v).any() else math.nan,
                    "std": float(np.nanstd(v)) if np.isfinite(v).any() else math.nan,
                    "values": v.tolist(),
                }
        return out

    @property
    def metrics(self) -> list[str]:
        first = self.folds[0]["scores"]["base"]
        shown = [m for m in REPORT_METRICS if m in first]
        rates = sorted(k for k in first if k.startswith("predicted_rate_"))
        return shown + ([] if "positive_rate" in first else rates)

    def tests(self) -> list[dict[str, Any]]:
        """Paired Wilcoxon tests per metric: each variant vs base and vs control, and
        control vs base; empty with fewer than two models."""
        from anan_onnx.evaluation.metrics import wilcoxon_paired

        if len(self.folds) < 2:
            return []
        pairs = [(v, "base") for v in self.variants] + [(v, "control") for v in self.variants]
        pairs.append(("control", "base"))
        out = []
        for model, reference in pairs:
            for metric in self.metrics:
                a, b = self.values(model, metric), self.values(reference, metric)
                if not (np.isfinite(a).all() and np.isfinite(b).all()):
                    continue
                test = wilcoxon_paired(b, a)
                diff = float(np.mean(a - b))
                lower = metric == "loss"
                tie = abs(diff) <= 1e-12  # a mean of equal scores can be off by rounding
                better = "tie" if tie else (model if (diff < 0) == lower else reference)
                if metric.startswith(("positive_rate", "predicted_rate")):
                    better = ""  # a rate is not better or worse by itself
                out.append(
                    {
                        "metric": metric,
                        "model": model,
                        "reference": reference,
                        "mean_difference": diff,
                        **test,
                        "better": better,
                    }
                )
        return out

    def flags(self) -> list[str]:
        """Warnings a reader needs: class shifts, F1 gains without MCC gains, no gain."""
        out = []
        for model in [*self.variants, "control"]:
            label = self.labels[model]
            shift, where = self._rate_shift(model)
            if shift > SHIFT_FLAG:
                folds = sum(self._fold_shift(f, model) > SHIFT_FLAG for f in self.folds)
                out.append(
                    f"{label}: the share of {where} moves by {shift * 100:.1f} points vs "
                    f"the base CNN (mean |change|; {folds}/{len(self.folds)} models over 10 "
                    "points); an F1 gain may come from predicting that class more often, not "
                    "from better discrimination: compare balanced accuracy and MCC"
                )
            if model == "control":
                continue
            d_f1 = np.nanmean(self.values(model, "f1") - self.values("base", "f1"))
            d_mcc = np.nanmean(self.values(model, "mcc") - self.values("base", "mcc"))
            if d_f1 > 0 and d_mcc <= 0:
                out.append(
                    f"{label}: F1 rises by {d_f1:.3f} but MCC does not ({d_mcc:+.3f}): the F1 "
                    "gain is not a better classifier"
                )
            d_control = np.nanmean(
                self.values(model, self.metric_key) - self.values("control", self.metric_key)
            )
            if self.metric_key != "loss" and d_control < 0:
                out.append(
                    f"{label}: the threshold-tuned control scores higher {self.metric} than "
                    f"ANAN ({-d_control:+.3f} on average)"
                )
        return out

    @property
    def metric_key(self) -> str:
        return {"auc": "roc_auc"}.get(self.metric, self.metric)

    def _rate_shift(self, model: str) -> tuple[float, str]:
        """Mean over folds of |Δ predicted share| vs the base (the most-moved class for
        softmax outputs); absolute per fold, so opposite shifts do not cancel."""
        shifts = [self._fold_shift(f, model) for f in self.folds]
        first = self.folds[0]["scores"]["base"]
        if "positive_rate" in first:
            return float(np.mean(shifts)), "positive predictions"
        keys = [k for k in first if k.startswith("predicted_rate_")]
        moved = max(keys, key=lambda k: float(np.nanmean(np.abs(
            self.values(model, k) - self.values("base", k)))))  # fmt: skip
        return float(np.mean(shifts)), f"class {moved.rsplit('_', 1)[1]} predictions"

    def _fold_shift(self, fold: dict[str, Any], model: str) -> float:
        a, b = fold["scores"][model], fold["scores"]["base"]
        keys = [k for k in b if k == "positive_rate" or k.startswith("predicted_rate_")]
        return max((abs(a[k] - b[k]) for k in keys), default=0.0)

    # --- output ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready (NaN becomes null)."""
        return _clean(
            {
                "metric": self.metric,
                "tuned_on": self.tuned_on,
                "labels": self.labels,
                "folds": self.folds,
                "summary": self.summary(),
                "tests": self.tests(),
                "flags": self.flags(),
                **self.info,
            }
        )

    def markdown(self, title: str | None = None, figure: str | None = None) -> str:
        """A Markdown report: summary, paired tests, flags and per-fold details."""
        from anan_onnx.evaluation.metrics import markdown_table

        n = len(self.folds)
        lines = [f"# {title or 'ANAN evaluation'}", ""]
        lines += [
            f"- models: {n} ({', '.join(f['name'] for f in self.folds[:12])}"
            + (", ..." if n > 12 else "")
            + ")",
            f"- test images per model: {self.folds[0]['n_test']}; "
            + (
                f"tuned on {self.tuned_on} images ({self._n_val()} per model)"
                if self.tuned_on != "params"
                else "parameters given (--params)"
            ),
            f"- selection metric: {self.metric}; control: the base CNN with its decision "
            "threshold (class weights for softmax) tuned on the same images as ANAN",
        ]
        if self.tuned_on == "test":
            lines.append(f"- **warning**: {TEST_WARNING}")
        lines += ["", f"## Test scores (mean ± std over {n} model{'s' * (n > 1)})", ""]
        summary = self.summary()
        rows = []
        for metric in self.metrics:
            row: dict[str, object] = {"metric": _NAMES.get(metric, metric)}
            for model, label in self.labels.items():
                s = summary[model][metric]
                row[label] = (
                    f"{s['mean']:.3f}" + (f" ± {s['std']:.3f}" if n > 1 else "")
                    if math.isfinite(s["mean"])
                    else "nan"
                )
            rows.append(row)
        lines.append(markdown_table(rows, ["metric", *self.labels.values()]))
        if figure:
            lines += ["", f"![base vs ANAN vs control]({figure})"]
        tests = self.tests()
        lines += ["", f"## Paired Wilcoxon signed-rank tests (two-sided, n = {n})", ""]
        if tests:
            if n < 6:
                lines += [
                    f"With n = {n} pairs the smallest possible two-sided p is "
                    f"{2 / 2**n:.4f}, so no difference can reach p < 0.05 here.",
                    "",
                ]
            rows = [
                {
                    "metric": _NAMES.get(t["metric"], t["metric"]),
                    "comparison": f"{self.labels[t['model']]} vs {self.labels[t['reference']]}",
                    "mean diff": f"{t['mean_difference']:+.4f}",
                    "p": f"{t['p_value']:.4f}",
                    "sig.": t["stars"],
                    "better on average": self.labels.get(t["better"], t["better"]),
                }
                for t in tests
            ]
            lines.append(
                markdown_table(
                    rows, ["metric", "comparison", "mean diff", "p", "sig.", "better on average"]
                )
            )
        else:
            lines.append("One model: no paired test (evaluate a folder of fold models).")
        flags = self.flags()
        lines += ["", "## Flags", ""]
        lines += [f"- {f}" for f in flags] if flags else ["- none"]
        lines += ["", "## Per model", ""]
        lines.append(self._per_fold_table())
        return "\n".join(lines) + "\n"

    def _n_val(self) -> str:
        counts = sorted({f.get("n_tune", 0) for f in self.folds})
        return "/".join(str(c) for c in counts)

    def _per_fold_table(self) -> str:
        from anan_onnx.evaluation.metrics import markdown_table

        rows, columns = [], ["model"]
        for v in self.variants:
            columns.append(f"params {v}")
        focus = [m for m in (self.metric_key, "balanced_accuracy", "positive_rate") if m]
        focus = list(dict.fromkeys(m for m in focus if m in self.metrics))
        for m in focus:
            columns += [f"{_NAMES.get(m, m)} {self._short(k)}" for k in self.labels]
        columns.append("control rule")
        for fold in self.folds:
            row: dict[str, object] = {"model": fold["name"]}
            for v in self.variants:
                p = fold["params"][v]
                row[f"params {v}"] = f"k={p['k']} μ={p['mu']} a={p['a']:g} b={p['b']:g}"
            for m in focus:
                for k in self.labels:
                    row[f"{_NAMES.get(m, m)} {self._short(k)}"] = fold["scores"][k].get(m)
            rule = fold["control"]
            row["control rule"] = (
                f"t={rule['threshold']:.3f}"
                if rule["kind"] == "threshold"
                else "w=" + ",".join(f"{w:.2f}" for w in rule["weights"])
            )
            rows.append(row)
        return markdown_table(rows, columns)

    def _short(self, key: str) -> str:
        return {"base": "CNN", "control": "ctrl"}.get(key, key)

    def figure_data(self, name: str | None = None) -> dict[str, dict[str, tuple]]:
        """``bar_figure`` input: one group per variant with F1 and accuracy (CNN, ANAN,
        stars of ANAN vs CNN, control)."""
        tests = {(t["model"], t["reference"], t["metric"]): t for t in self.tests()}
        summary = self.summary()
        groups: dict[str, dict[str, tuple]] = {}
        for v in self.variants:
            group = f"{name} {v}" if name else v
            groups[group] = {}
            for metric, title in (("f1", "F1"), ("accuracy", "Accuracy")):
                t = tests.get((v, "base", metric))
                groups[group][title] = (
                    summary["base"][metric]["mean"],
                    summary[v][metric]["mean"],
                    t["stars"] if t else "",
                    summary["control"][metric]["mean"],
                )
        return groups

    def figure(self, path: str | Path, title: str | None = None) -> Path:
        """Writes a PNG like the paper's Figure 5 (F1 and accuracy, CNN / ANAN / control)."""
        from anan_onnx.evaluation.metrics import bar_figure

        return bar_figure(
            path,
            self.figure_data(),
            metrics=["F1", "Accuracy"],
            labels=("CNN", "ANAN", "control (threshold)"),
            title=title,
        )


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def evaluate(
    models: str | Path,
    data: str | Path | None = None,
    *,
    params: Sequence[AnanParams | str | Path] = (),
    grid: Grid = PAPER_GRID,
    metric: str = "f1",
    tune_on: str = "val",
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
    positive: Sequence[int | str] | None = None,
    max_per_class: int | None = None,
    layer: str | None = None,
    threads: int | None = None,
    batch_size: int = 256,
    progress: bool | None = None,
    log: Any = None,
) -> Evaluation:
    """Evaluates base vs control vs ANAN on the test images, per model.

    Args:
        models: a base model file, or a folder of fold models (``fold1.onnx`` ...).
        data: the image set; optional when ``training.json`` records it.
        params: fixed ANAN parameters (``AnanParams`` or params JSON files), one variant
            each; default: tune each option combination of ``grid`` per model.
        grid, metric: what to tune and the selection metric (as ``anan-onnx tune``).
        tune_on: ``"val"`` (default) or ``"test"`` (warns: optimistic).
        val_fraction, test_fraction, seed, positive, max_per_class: how to split ``data``
            when no ``training.json`` is found (see :func:`anan_onnx.load_splits`).
        layer, threads, batch_size, progress: as for :func:`anan_onnx.evaluation.tune.grid_search`.
        log: a callable receiving one progress line per model (e.g. ``print``).

    Returns:
        An :class:`Evaluation`.
    """
    from anan_onnx.evaluation.metrics import METRICS, scores
    from anan_onnx.runtime.images import InputSpec

    if metric not in METRICS:
        raise AnanError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if tune_on not in TUNE_ON:
        raise AnanError(f"tune_on must be one of {', '.join(TUNE_ON)}, got {tune_on!r}")
    fixed = [p if isinstance(p, AnanParams) else read_params(p) for p in params]
    variants = _variants(grid, fixed)
    files = find_models(models)
    source = _Data(
        files,
        Path(data) if data is not None else None,
        {
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "seed": seed,
            "positive": positive,
            "max_per_class": max_per_class,
            "progress": progress,
        },
    )
    if tune_on == "test":  # ANAN (unless --params) and the control are fitted to the test set
        warnings.warn(TEST_WARNING, UserWarning, stacklevel=2)
    folds = []
    for path in files:
        base = load_model(path)
        spec = InputSpec.from_metadata(_metadata.read_metadata(base))
        val, test = source.splits(path, spec, need_val=tune_on == "val")
        tune_split = test if tune_on == "test" else val
        assert tune_split is not None
        base_tune = _predict(base, tune_split.images, threads, batch_size)
        base_test = _predict(base, test.images, threads, batch_size)
        check_labels(base_test, test.labels, test.classes)
        check_labels(base_tune, tune_split.labels, tune_split.classes)
        # the control's threshold is tuned on the same images as ANAN's parameters
        rule, control_scores = _control(
            tune_split.labels, base_tune, base_test, test.labels, metric
        )
        fold: dict[str, Any] = {
            "name": path.name[: -len(path.suffix)],
            "model": str(path),
            "n_val": len(val.labels) if val is not None else 0,
            "n_test": len(test.labels),
            "n_tune": len(tune_split.labels),
            "tune_source": tune_split.source,
            "test_source": test.source,
            "control": rule,
            "params": {},
            "tuning": {},
            "scores": {"base": scores(test.labels, base_test), "control": control_scores},
            "tune_scores": {"base": scores(tune_split.labels, base_tune)},
        }
        for variant in variants:
            if variant.fixed is not None:
                chosen = variant.fixed
            else:
                assert variant.grid is not None
                result = grid_search(
                    base,
                    tune_split.images,
                    tune_split.labels,
                    variant.grid,
                    metric,
                    classes=tune_split.classes,
                    layer=layer,
                    threads=threads,
                    batch_size=batch_size,
                    progress=progress,
                )
                chosen = result.params
                fold["tuning"][variant.key] = {
                    "seconds": round(result.seconds, 2),
                    "configurations": len(result.rows),
                    "value": result.best["value"],
                    "base_value": _oriented(result.base_scores, metric),
                    "improves_on_base": result.improves_on_base,
                }
            anan = _convert(base, chosen, layer)
            fold["params"][variant.key] = chosen.as_dict()
            fold["scores"][variant.key] = scores(
                test.labels, _predict(anan, test.images, threads, batch_size)
            )
            fold["tune_scores"][variant.key] = scores(
                tune_split.labels, _predict(anan, tune_split.images, threads, batch_size)
            )
        folds.append(fold)
        if log is not None:
            log(_fold_line(fold, variants, metric))
    labels = {"base": "CNN", "control": "control (threshold)"}
    labels.update({v.key: v.label for v in variants})
    info = {
        "models": [str(f) for f in files],
        "data": str(data) if data is not None else None,
        "grid": grid.as_dict() if not fixed else None,
        "variants": {v.key: v.label for v in variants},
    }
    return Evaluation(folds, labels, metric, "params" if fixed else tune_on, info)


def _oriented(values: dict[str, float], metric: str) -> float:
    from anan_onnx.evaluation.metrics import select_metric_value

    return select_metric_value(values, metric)


def _convert(base: onnx.ModelProto, params: AnanParams, layer: str | None) -> onnx.ModelProto:
    from anan_onnx.convert.pipeline import convert_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mu > k is reported by the tuner, not per fold
        return convert_model(base, params, layer=layer).anan


def _predict(
    model: onnx.ModelProto, images: np.ndarray, threads: int | None, batch_size: int
) -> np.ndarray:
    from anan_onnx.runtime.session import Session

    session = Session(model, threads=threads)
    parts = [session.predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(parts)


def _fold_line(fold: dict[str, Any], variants: list[_Variant], metric: str) -> str:
    key = {"auc": "roc_auc"}.get(metric, metric)
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
