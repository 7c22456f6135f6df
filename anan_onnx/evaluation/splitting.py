"""Splitting a labelled image set before its pixels are read: listings, holdouts, caps.

A :class:`Listing` says where each image of a split is and its label; the train/val/test
listings are drawn from it stratified by class and seeded, with the same call as
``research/train_base_cnn.py`` so that both tools agree on the split.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.install_hint import install_hint

__all__ = ["SPLITS", "Listing", "cap", "holdout", "split_listings"]

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclasses.dataclass
class Listing:
    """A split before its pixels are read: where each image is and its label."""

    refs: list[Any]  # relative file paths, or indices into an npz array
    labels: np.ndarray  # int64 original class indices: splits are stratified on them
    targets: np.ndarray  # int64 labels of the returned data set (binarised when asked)

    def take(self, index: np.ndarray) -> Listing:
        return Listing([self.refs[i] for i in index], self.labels[index], self.targets[index])


def split_listings(
    stored: dict[str, Listing],
    kind: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    classes: list[str],
) -> tuple[dict[str, Listing], dict[str, str]]:
    """Final train/val/test listings and, per split, where it came from (for ``info``)."""
    out = dict(stored)
    how = {s: f"{s}:stored" for s in stored}
    if kind == "folder":
        pool = out.pop("all")
        del how["all"]
        if test_fraction > 0:
            train_idx, test_idx = holdout(pool.labels, test_fraction, seed, classes, "test")
            out["train"], out["test"] = pool.take(train_idx), pool.take(test_idx)
            how["test"] = "all:random"
        else:
            out["train"] = pool
        how["train"] = "all:random"
    if "val" not in out and "train" in out and val_fraction > 0:
        train = out["train"]
        train_idx, val_idx = holdout(train.labels, val_fraction, seed, classes, "val")
        out["train"], out["val"] = train.take(train_idx), train.take(val_idx)
        how["val"] = how["train"].split(":")[0] + ":random"
        how["train"] = how["val"]
    return out, how


def holdout(
    labels: np.ndarray, fraction: float, seed: int, classes: list[str], part: str
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) sorted indices: a stratified seeded holdout of ``fraction``.

    The same call as ``research/train_base_cnn.py`` (``train_test_split`` on ``arange(n)``,
    ``stratify=labels``, ``random_state=seed``), so both tools agree on the split.
    """
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise AnanError(
            f"scikit-learn is needed to split a data set: {install_hint('eval')}"
        ) from None
    counts = np.bincount(labels, minlength=len(classes))
    smallest = int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))
    try:
        kept, held = train_test_split(
            np.arange(len(labels)), test_size=fraction, stratify=labels, random_state=seed
        )
    except ValueError as e:
        raise AnanError(
            f"cannot draw a stratified {part} split of {fraction:g} ({e}); the smallest class, "
            f"{classes[smallest]}, has {counts[smallest]} images: add images or change the "
            f"{part}_fraction"
        ) from None
    return np.sort(kept), np.sort(held)


def cap(labels: np.ndarray, limit: int, seed: int, salt: int) -> np.ndarray:
    """Sorted indices keeping at most ``limit`` random images of each class."""
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) > limit:
            rng = np.random.default_rng([seed, int(c), 1000 + salt])
            idx = rng.choice(idx, size=limit, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep))
