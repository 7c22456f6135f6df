"""Validation and test images per model: from ``training.json`` or from one shared split.

When the model folder holds ``training.json`` (written by ``research/train_base_cnn.py``), each
fold is tuned on its own held-out fold (``val_indices``) and tested on the recorded test
files; otherwise one split is drawn by :func:`anan_onnx.load_splits` and shared by all
models. Images are read a slice at a time when used (:class:`LazyImages`), so memory does
not grow with their number; models sharing a split share its listing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.datasets import load_with, positive_indices
from anan_onnx.evaluation.lazy_images import LazyImages
from anan_onnx.options import SplitOptions
from anan_onnx.training_record import find_training_record, fold_of

__all__ = ["FoldData", "FoldSplit"]


@dataclasses.dataclass
class FoldSplit:
    images: np.ndarray | LazyImages  # read a slice at a time: memory independent of n
    labels: np.ndarray
    classes: list[str]
    source: str


class FoldData:
    """Validation and test images for each model, from training.json or load_splits."""

    def __init__(
        self,
        models: list[Path],
        data: Path | None,
        options: SplitOptions,
        progress: bool | None = None,
    ) -> None:
        self.models = models
        self.data = data
        self.options = options
        self.progress = progress
        self.records = {m: find_training_record(m) for m in models}
        self._cache: dict[Any, Any] = {}

    def splits(self, model: Path, spec: Any, need_val: bool) -> tuple[FoldSplit | None, FoldSplit]:
        record = self.records[model]
        if record is not None:
            return self._from_record(model, record, spec, need_val)
        return self._from_loader(spec, need_val)

    def _from_loader(self, spec: Any, need_val: bool) -> tuple[FoldSplit | None, FoldSplit]:
        if self.data is None:
            raise AnanError(
                "no data set given and no training.json next to the models: pass the data set"
            )
        key = ("loader", spec)
        if key not in self._cache:
            self._cache[key] = load_with(
                self.options, self.data, spec, progress=self.progress, lazy=True
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
            FoldSplit(
                splits.val.images, splits.val.labels, splits.val.classes, how.get("val", "val")
            )
            if splits.val is not None
            else None
        )
        test = FoldSplit(
            splits.test.images, splits.test.labels, splits.test.classes, how.get("test", "test")
        )
        return val, test

    def _from_record(
        self, model: Path, record: dict[str, Any], spec: Any, need_val: bool
    ) -> tuple[FoldSplit | None, FoldSplit]:
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
        fold = fold_of(model, record)
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
    ) -> FoldSplit:
        key = (tuple(files), spec)
        if key not in self._cache:
            self._cache[key] = LazyImages.files([str(root / f) for f in files], spec)
        if len(labels) != len(files):
            raise AnanError(f"training.json has {len(labels)} labels for {len(files)} files")
        positive = self.options.positive
        if positive is not None:
            index = positive_indices(positive, classes, root)
            labels = np.isin(labels, index).astype(np.int64)
            classes = ["negative", "positive"]
        return FoldSplit(self._cache[key], labels, classes, source)
