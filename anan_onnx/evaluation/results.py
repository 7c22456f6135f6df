"""The results of ``evaluate``: per-fold scores, their summary, paired tests, flags, report.

:class:`Evaluation` holds the per-fold scores and derives the rest: mean and std over
folds, paired two-sided Wilcoxon tests (ANAN vs base, ANAN vs control, control vs base, as in
the paper's Table 3), the flags a reader needs (class shifts over 10 points, F1 gains without
MCC gains, a control that beats ANAN), the Markdown report, its JSON and its figure.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx import json_clean
from anan_onnx._public import public
from anan_onnx.evaluation.metric_names import DISPLAY_NAMES, REPORTED, metric_key
from anan_onnx.evaluation.report import bar_figure, bar_figure_png, markdown_table
from anan_onnx.evaluation.statistics import holm, significance_stars, wilcoxon_paired
from anan_onnx.evaluation.tune import TEST_WARNING

__all__ = ["SHIFT_FLAG", "Evaluation"]

#: A change of the predicted-positive share larger than this is flagged (10 points).
SHIFT_FLAG = 0.10


@public
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
        shown = [m for m in REPORTED if m in first]
        rates = sorted(k for k in first if k.startswith("predicted_rate_"))
        return shown + ([] if "positive_rate" in first else rates)

    def tests(self) -> list[dict[str, Any]]:
        """Paired Wilcoxon tests per metric: each variant vs base and vs control, and
        control vs base; empty with fewer than two models."""
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
        _add_holm(out)
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
        return metric_key(self.metric)

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
        return json_clean.clean(
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
        notes = dict.fromkeys(f["classes"]["note"] for f in self.folds if f.get("classes"))
        lines += [f"- classes: {note}" for note in notes if note]
        if self.tuned_on == "test":
            lines.append(f"- **warning**: {TEST_WARNING}")
        lines += ["", f"## Test scores (mean ± std over {n} model{'s' * (n > 1)})", ""]
        summary = self.summary()
        rows = []
        for metric in self.metrics:
            row: dict[str, object] = {"metric": DISPLAY_NAMES.get(metric, metric)}
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
                    "metric": DISPLAY_NAMES.get(t["metric"], t["metric"]),
                    "comparison": f"{self.labels[t['model']]} vs {self.labels[t['reference']]}",
                    "mean diff": f"{t['mean_difference']:+.4f}",
                    "p": f"{t['p_value']:.4f}",
                    "p (Holm)": f"{t['p_holm']:.4f}",
                    "sig.": t["stars"],
                    "better on average": self.labels.get(t["better"], t["better"]),
                }
                for t in tests
            ]
            lines.append(
                markdown_table(
                    rows,
                    ["metric", "comparison", "mean diff", "p", "p (Holm)", "sig.",
                     "better on average"],
                )  # fmt: skip
            )
            lines += ["", HOLM_NOTE]
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
        rows, columns = [], ["model"]
        for v in self.variants:
            columns.append(f"params {v}")
        focus = [m for m in (self.metric_key, "balanced_accuracy", "positive_rate") if m]
        focus = list(dict.fromkeys(m for m in focus if m in self.metrics))
        for m in focus:
            columns += [f"{DISPLAY_NAMES.get(m, m)} {self._short(k)}" for k in self.labels]
        columns.append("control rule")
        for fold in self.folds:
            row: dict[str, object] = {"model": fold["name"]}
            for v in self.variants:
                p = fold["params"][v]
                row[f"params {v}"] = f"k={p['k']} μ={p['mu']} a={p['a']:g} b={p['b']:g}"
            for m in focus:
                for k in self.labels:
                    row[f"{DISPLAY_NAMES.get(m, m)} {self._short(k)}"] = fold["scores"][k].get(m)
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

    def figure_errors(self, name: str | None = None) -> dict[str, dict[str, tuple]]:
        """Standard deviations over folds for :meth:`figure_data`'s bars (CNN, ANAN,
        control); NaN (no error bar) for a single model."""
        summary = self.summary()
        groups: dict[str, dict[str, tuple]] = {}
        for v in self.variants:
            group = f"{name} {v}" if name else v
            groups[group] = {
                title: tuple(
                    summary[m][metric]["std"] if len(self.folds) > 1 else math.nan
                    for m in ("base", v, "control")
                )
                for metric, title in (("f1", "F1"), ("accuracy", "Accuracy"))
            }
        return groups

    def figure(self, path: str | Path, title: str | None = None) -> Path:
        """Writes a PNG like the paper's Figure 5 (F1 and accuracy, CNN / ANAN / control,
        mean over folds with ± one standard deviation)."""
        return bar_figure(path, self.figure_data(), **self._figure_style(title))

    def figure_png(self, title: str | None = None) -> bytes:
        """The PNG bytes of :meth:`figure`."""
        return bar_figure_png(self.figure_data(), **self._figure_style(title))

    def _figure_style(self, title: str | None) -> dict[str, Any]:
        return {
            "metrics": ["F1", "Accuracy"],
            "labels": ("CNN", "ANAN", "control (threshold)"),
            "title": title,
            "errors": self.figure_errors(),
        }


#: Joins a variant's key and its layer (``multiplicative@conv2``) under ``--layers``.
LAYER_SEPARATOR = "@"
#: How the report's Holm column reads.
HOLM_NOTE = (
    "p (Holm): with `--layers`, Holm-adjusted over the layers (one variant, one reference, "
    "one metric: a family); otherwise equal to p. sig. marks the adjusted p "
    "(* < 0.05, ** < 0.01)."
)


def _add_holm(tests: list[dict[str, Any]]) -> None:
    """Adds ``p_holm`` (and sets ``stars`` from it) per family: one ANAN variant's tests on
    every layer (``KEY@LAYER``, ``evaluate --layers``) against one reference on one metric.
    Without ``--layers`` every family has one test and ``p_holm`` is ``p``."""
    families: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for t in tests:
        variant = t["model"].split(LAYER_SEPARATOR)[0]
        families.setdefault((t["metric"], t["reference"], variant), []).append(t)
    for family in families.values():
        for t, p in zip(family, holm([t["p_value"] for t in family]), strict=True):
            t["p_holm"] = p
            t["stars"] = significance_stars(p)
