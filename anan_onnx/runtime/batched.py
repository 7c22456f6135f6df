"""Predicting a large array in batches: one check of the whole array, then fixed-size runs.

Example:
    >>> probs = predict_batched("model.anan.onnx", images, batch_size=128)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from anan_onnx.limits import positive_int
from anan_onnx.options import BATCH_ROWS
from anan_onnx.runtime.inputs import check_batch
from anan_onnx.runtime.session import Session

__all__ = ["predict_batched"]


def predict_batched(
    model: str | Path | onnx.ModelProto | Session,
    images: np.ndarray,
    *,
    threads: int | None = None,
    batch_size: int = BATCH_ROWS,
    name: str = "images",
) -> np.ndarray:
    """The model's first output for ``images``, ``batch_size`` images per run.

    Args:
        model: a model (file or proto; a CPU session is made with ``threads``) or a Session.
        images: the batch in the model's layout; checked once (shape, dtype, NaN/Inf).
        batch_size: images per onnxruntime run, which bounds its memory.
        name: what to call ``images`` in messages.
    """
    batch_size = positive_int("batch_size", batch_size)
    session = model if isinstance(model, Session) else Session(model, threads=threads)
    x = check_batch(images, session.input_shape, name=name)
    parts = [session.run(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(parts)
