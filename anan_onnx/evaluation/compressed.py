"""``evaluate`` of a compressed ANAN model: its test scores next to the FP32 model's.

A compressed model is a deployment artefact of one ANAN model, not a base CNN to tune, so
it gets its own short path: both models scored on the same test split (the split
``evaluate`` and ``tune`` draw, or ``test/``), plus the share of equal predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx.convert.classes import class_count
from anan_onnx.evaluation.class_match import match_classes, model_classes
from anan_onnx.evaluation.datasets import load_with
from anan_onnx.evaluation.scores import scores
from anan_onnx.metadata import read_metadata
from anan_onnx.model_io import load_onnx
from anan_onnx.options import RunOptions, SplitOptions
from anan_onnx.reference.compressed import fp32_model_path
from anan_onnx.runtime.batched import predict_batched
from anan_onnx.runtime.inputs import InputSpec
from anan_onnx.runtime.labels import predicted_labels
from anan_onnx.runtime.session import Session

__all__ = ["evaluate_compressed", "is_compressed", "markdown"]

SHOWN = ("accuracy", "f1", "balanced_accuracy", "loss")
#: Images read and run at a time.
BATCH = 256


def is_compressed(path: Path) -> bool:
    """Whether ``path`` is a model file written by ``anan-onnx compress``."""
    return path.is_file() and "compression" in read_metadata(load_onnx(path))


def evaluate_compressed(
    model: Path, data: Path, fp32: Path | None, split: SplitOptions, run: RunOptions
) -> dict[str, Any]:
    """Scores of the compressed model and of its FP32 model on the test images."""
    proto = load_onnx(model)
    meta = read_metadata(proto)
    fp32 = fp32_model_path(model, meta, fp32)
    spec = InputSpec.from_metadata(meta)
    # lazy: the test split only, read a batch at a time
    test = load_with(split, data, spec, progress=run.progress, lazy=True).test
    assert test is not None
    classes = match_classes(
        model_classes(meta), test.classes, class_count(proto), binarised=split.positive is not None
    )
    y, present = classes.labels(test.labels), (classes.present if classes.subset else None)
    probs = _predict_streamed(
        {"fp32": fp32, meta["compression"]: model}, test.images, len(test), run.threads
    )
    labels = [predicted_labels(p) for p in probs.values()]
    return {
        "model": str(model),
        "fp32_model": str(fp32),
        "n_test": len(test.labels),
        "classes": {**classes.to_json(), "note": classes.note},
        "scores": {name: scores(y, p, classes=present) for name, p in probs.items()},
        "agreement_with_fp32": float(np.mean(labels[0] == labels[1])),
    }


def _predict_streamed(
    models: dict[str, Path], images: Any, n: int, threads: int | None
) -> dict[str, np.ndarray]:
    """Each model's outputs for ``images`` (read :data:`BATCH` at a time: memory does not
    grow with the test split, as in ``tune`` and ``evaluate``)."""
    sessions = {name: Session(path, threads=threads) for name, path in models.items()}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for start in range(0, n, BATCH):
        x = np.asarray(images[start : start + BATCH])
        for name, session in sessions.items():
            outputs[name].append(predict_batched(session, x, batch_size=BATCH))
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def markdown(result: dict[str, Any]) -> str:
    """A small table: one row per model, the main scores, and the agreement."""
    lines = [
        f"# {Path(result['model']).name} vs {Path(result['fp32_model']).name}",
        "",
        f"{result['n_test']} test images; predictions equal to FP32: "
        f"{result['agreement_with_fp32']:.1%}",
        *(["", f"Classes: {result['classes']['note']}"] if result["classes"]["note"] else []),
        "",
        "| model | " + " | ".join(SHOWN) + " |",
        "|---" * (len(SHOWN) + 1) + "|",
    ]
    for name, s in result["scores"].items():
        lines.append(f"| {name} | " + " | ".join(f"{s[k]:.4f}" for k in SHOWN) + " |")
    return "\n".join(lines) + "\n"
