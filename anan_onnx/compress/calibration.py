"""Calibration images for INT8: found, sampled with a seed and preprocessed as recorded.

The images are read with :func:`anan_onnx.runtime.image_files.load_images` and the model's
own :class:`~anan_onnx.runtime.inputs.InputSpec` (layout, size, scale, offset from its
metadata), i.e. exactly as ``predict`` would feed them, so the ranges onnxruntime measures
are the ranges the model sees in use.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.runtime.image_files import IMAGE_EXTENSIONS, load_images
from anan_onnx.runtime.inputs import InputSpec

__all__ = ["Calibration", "calibration_set", "image_files"]

#: images per calibration run (a dynamic batch axis takes them several at a time)
CHUNK = 16


@dataclasses.dataclass
class Calibration:
    """A preprocessed calibration sample, held-back check images, and where they came from.

    Attributes:
        batch: float32 images in the model's layout (calibrated on).
        files: the sampled files, in batch order.
        sha256: digest of the sampled files' names (relative to the data root) and bytes.
        check: float32 images drawn from the *other* files (never calibrated on), on which
            ``compress`` measures agreement with the FP32 model; may be empty.
    """

    batch: np.ndarray
    files: list[Path]
    sha256: str
    check: np.ndarray


def image_files(data: Sequence[Path]) -> list[Path]:
    """Image files under ``data`` (folders are searched recursively), sorted."""
    found: list[Path] = []
    for item in data:
        if item.is_dir():
            found += [p for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS]
        elif item.is_file():
            found.append(item)
        else:
            raise AnanError(f"calibration data {item}: no such file or folder: check the path")
    found = sorted(set(found))
    if not found:
        names = ", ".join(str(d) for d in data)
        raise AnanError(
            f"no calibration images in {names}: pass a folder of images "
            f"({', '.join(IMAGE_EXTENSIONS[:4])} ...) the model will see"
        )
    return found


def calibration_set(
    data: Sequence[Path], spec: InputSpec, size: int, seed: int, check: int = 0
) -> Calibration:
    """``size`` images drawn without replacement (seeded) from ``data``, and up to ``check``
    more from the remaining files, preprocessed. ``size`` 0 draws check images only (FP16)."""
    if size < 0 or check < 0:
        raise AnanError(f"--calibration-size and --check-size must be >= 0, got {size}, {check}")
    files = image_files(data)
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(files), size=min(size, len(files)), replace=False))
    rest = np.setdiff1d(np.arange(len(files)), picked)
    held = sorted(rng.permutation(rest)[:check])
    chosen = [files[i] for i in picked]
    return Calibration(
        _load([files[i] for i in picked], spec),
        chosen,
        _digest(chosen, data),
        _load([files[i] for i in held], spec),
    )


def _load(files: list[Path], spec: InputSpec) -> np.ndarray:
    if not files:
        return np.zeros(spec.batch_shape(0), np.float32)
    batch, _, _ = load_images(files, spec, on_error="raise", progress=False)
    return batch


def _digest(files: list[Path], roots: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(_relative(path, roots).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _relative(path: Path, roots: Sequence[Path]) -> str:
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name


class BatchReader:
    """An onnxruntime ``CalibrationDataReader`` over a preprocessed batch."""

    def __init__(self, input_name: str, batch: np.ndarray, fixed_batch: int | None) -> None:
        size = fixed_batch or CHUNK
        if fixed_batch and len(batch) % fixed_batch:  # a fixed batch axis: pad by repeating
            extra = fixed_batch - len(batch) % fixed_batch
            batch = np.concatenate([batch, np.resize(batch, (extra, *batch.shape[1:]))])
        self._items = [{input_name: batch[i : i + size]} for i in range(0, len(batch), size)]
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._items):
            return None
        self._next += 1
        return self._items[self._next - 1]

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self._items)
