"""What a grid search found: every configuration's scores and the selected one.

Example:
    >>> result.write("out/tune")  # grid.csv and best.json, both or neither  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

from anan_onnx import json_clean
from anan_onnx._public import public
from anan_onnx._version import __version__
from anan_onnx.evaluation.grid import NUMBERS, Grid
from anan_onnx.evaluation.metric_names import REPORTED
from anan_onnx.evaluation.scores import select_metric_value
from anan_onnx.model_io import write_all_atomic, write_bytes_atomic
from anan_onnx.params import AnanParams

__all__ = ["TuneResult"]


@public
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
        info: where the images came from (split info, model path, classes), JSON-ready.
        emitted: the ANAN model :func:`~anan_onnx.evaluation.tune.tune` wrote (``emit``), or
            ``None``.
        interval: on a small set, 95 % bootstrap intervals of the metric (``anan``,
            ``base``, ``difference``; see :func:`~anan_onnx.evaluation.tune.metric_interval`),
            else ``None``.
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
    emitted: Path | None = None
    interval: dict[str, Any] | None = None

    @property
    def improves_on_base(self) -> bool:
        """Whether the best configuration beats the base CNN on the tuning images."""
        base = select_metric_value(self.base_scores, self.metric)
        return bool(self.best["value"] > base)

    def summary(self, notes: dict[str, str] | None = None) -> str:
        """A few lines for the terminal; ``notes`` (label: text) are appended, aligned."""
        base = select_metric_value(self.base_scores, self.metric)
        sign = -1 if self.metric == "loss" else 1
        scores = [(self.metric, sign * self.best["value"], sign * base)]
        scores += [
            (key, self.best[key], self.base_scores[key])
            for key in ("balanced_accuracy", "mcc", "positive_rate")
            if key in self.best and key != self.metric
        ]
        notes = {**self.notes(), **(notes or {})}
        width = max(len(key) for key in [*(k for k, _, _ in scores), *notes])
        n = len(self.rows)
        lines = [
            f"searched {n} configuration{'' if n == 1 else 's'} on {self.n_images} "
            f"{self.tuned_on} images in {self.seconds:.1f} s "
            f"({self.rest_rows} rest-of-network run{'' if self.rest_rows == 1 else 's'})",
            f"  {'best':<{width}} : {self.params.describe()}",
        ]
        for i, (key, anan, base_value) in enumerate(scores):
            verdict = (
                "" if i or self.improves_on_base else "  (no configuration beats the base CNN)"
            )
            lines.append(f"  {key:<{width}} : ANAN {anan:.4f}  base {base_value:.4f}{verdict}")
        lines += [f"  {key:<{width}} : {text}" for key, text in notes.items()]
        return "\n".join(lines)

    def notes(self) -> dict[str, str]:
        """What the summary must say besides the scores: how the classes were matched and,
        on a small set, how uncertain the metric is."""
        out = {}
        classes = self.info.get("class_map") or {}
        if classes.get("note"):
            out["classes"] = classes["note"]
        if self.interval is not None:
            out["sample"] = self.interval_text()
        return out

    def interval_text(self) -> str:
        """The small-sample warning: the metric's bootstrap intervals, in words."""
        ci = self.interval or {}
        sign = -1 if self.metric == "loss" else 1

        def show(name: str, value: float, signed: bool = False) -> str:
            bounds = ci.get(name)
            number = f"{value:+.3f}" if signed else f"{value:.3f}"
            if bounds is None:
                return f"{number} (interval undefined: some resamples hold one class)"
            return f"{number} [{bounds[0]:.3f}, {bounds[1]:.3f}]"

        anan = sign * self.best["value"]

        base = sign * select_metric_value(self.base_scores, self.metric)
        return (
            f"only {self.n_images} {self.tuned_on} images: {ci.get('metric', self.metric)} "
            f"ANAN {show('anan', anan)}, base {show('base', base)}, difference "
            f"{show('difference', anan - base, signed=True)} (95 % bootstrap intervals); a "
            "difference whose interval holds 0 may be noise: tune on more images"
        )

    def to_json(self) -> dict[str, Any]:
        """The selection, JSON-ready: NaN scores are null (what :meth:`write_json` writes)."""
        return json_clean.clean(
            {
                "tool": f"anan-onnx {__version__} tune",
                "params": self.params.as_dict(),
                "metric": self.metric,
                "tuned_on": self.tuned_on,
                "n_images": self.n_images,
                "scores": {k: self.best[k] for k in REPORTED if k in self.best},
                "base_scores": self.base_scores,
                "improves_on_base": self.improves_on_base,
                "configurations": len(self.rows),
                "rest_rows": self.rest_rows,
                "seconds": round(self.seconds, 3),
                "target_layer": self.target_layer,
                "interval": self.interval,
                **self.info,
            }
        )

    def write_json(self, path: str | Path) -> None:
        """Writes :meth:`to_json` atomically."""
        write_bytes_atomic(json_clean.to_bytes(self.to_json()), path)

    def write_csv(self, path: str | Path) -> None:
        """Writes every configuration's scores, one row each, atomically."""
        write_bytes_atomic(self.csv_text().encode(), path)

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Writes ``grid.csv`` and ``best.json`` into ``folder``, both or neither."""
        folder = Path(folder)
        files = (folder / "grid.csv", folder / "best.json")
        write_all_atomic(
            [(self.csv_text().encode(), files[0]), (json_clean.to_bytes(self.to_json()), files[1])]
        )
        return files

    def csv_text(self) -> str:
        """Every configuration's scores as CSV, one row each (what :meth:`write_csv` writes)."""
        columns = [*(p.name for p in Grid.options()), *NUMBERS, *REPORTED, "best"]
        # ``value`` repeats the metric column (negated for loss) and ``bce`` repeats ``loss``
        duplicates = {"n", "threshold", "value", "bce"}
        extra = sorted({k for r in self.rows for k in r} - set(columns) - duplicates)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, [*columns, *extra], extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({**row, "best": int(row is self.best)})
        return buffer.getvalue()
