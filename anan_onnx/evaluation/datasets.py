"""Labelled image sets, split into train / validation / test.

:func:`load_splits` recognises three layouts on disk:

* ``folder``: one sub-folder per class and no split (e.g. Fire: ``fire_images/``,
  ``non_fire_images/``); train/val/test are drawn from it, stratified by class and seeded;
* ``train_test``: ``train/`` and ``test/`` (and optionally ``val/``), each with the same class
  folders (e.g. Cats&Dogs); without ``val/`` the validation split is drawn from ``train/``;
* ``npz``: a MedMNIST-style archive with ``train_images``, ``train_labels``, ``val_images``,
  ``val_labels``, ``test_images``, ``test_labels``.

Class folders are sorted by name and numbered from 0, as Keras'
``image_dataset_from_directory`` and ``research/train_base_cnn.py`` do; ``tune`` and
``evaluate`` then match these names with the model's classes
(:mod:`~anan_onnx.evaluation.class_match`). Only image files directly inside a class folder
are used. An empty class folder is skipped with a warning: its class is absent, as if the
folder were not there (in ``train/``/``test/`` layouts, a class empty in one split but not in
another keeps its number and simply has no images there).

Example:
    >>> splits = load_splits("data/fire", InputSpec("NHWC", 64, 64, 3))  # doctest: +SKIP
    >>> splits.test.classes, len(splits.test)  # doctest: +SKIP
    (['fire_images', 'non_fire_images'], 200)
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from anan_onnx._public import public
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.lazy_images import LazyImages
from anan_onnx.evaluation.npz_source import NpzSource
from anan_onnx.evaluation.splitting import SPLITS, Listing, cap, split_listings
from anan_onnx.files import describe_kind
from anan_onnx.options import SplitOptions
from anan_onnx.runtime.image_files import (
    IMAGE_EXTENSIONS,
    load_images,
)
from anan_onnx.runtime.inputs import InputSpec

__all__ = [
    "DATASET_LAYOUTS",
    "Dataset",
    "SplitOptions",
    "Splits",
    "load_splits",
    "load_with",
    "positive_indices",
]

DATASET_LAYOUTS: tuple[str, ...] = ("folder", "train_test", "npz")
_VAL_NAMES = ("val", "valid", "validation")

Layout = Literal["folder", "train_test", "npz"]


@public
@dataclasses.dataclass
class Dataset:
    """A labelled batch of images, ready for the model.

    Attributes:
        images: float32 batch in the model layout (``InputSpec.batch_shape(n)``), or with
            ``load_splits(lazy=True)`` a :class:`LazyImages` that reads them when sliced.
        labels: int64 class index of each image, shape (n,).
        classes: class names; ``labels`` index into them.
        paths: where each image came from (a file path, or ``"npz:test[12]"``).
    """

    images: np.ndarray | LazyImages
    labels: np.ndarray
    classes: list[str]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        """Number of images per class name."""
        per = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, per, strict=True)}


@public
@dataclasses.dataclass
class Splits:
    """What :func:`load_splits` returns.

    Attributes:
        train: images to fit on (may be ``None`` when the source has none).
        val: images to tune ANAN parameters / the control threshold on.
        test: images to report on.
        info: how the splits were made (JSON-ready): ``layout``, ``source``, ``seed``,
            fractions, ``classes``, ``positive``, per-split ``counts`` and ``files``.
    """

    train: Dataset | None
    val: Dataset | None
    test: Dataset | None
    info: dict[str, Any]

    def items(self) -> list[tuple[str, Dataset]]:
        """``(name, dataset)`` for each split present, in train, val, test order."""
        present = (("train", self.train), ("val", self.val), ("test", self.test))
        return [(name, ds) for name, ds in present if ds is not None]


def load_with(
    options: SplitOptions,
    path: str | os.PathLike[str],
    spec: InputSpec,
    *,
    progress: bool | None = None,
    lazy: bool = False,
) -> Splits:
    """:func:`load_splits` of ``path`` with the split ``options`` (what ``tune`` and
    ``evaluate`` take)."""
    return load_splits(
        path, spec, **dataclasses.asdict(options), progress=progress, lazy=lazy
    )


_SPLIT = SplitOptions()  # the defaults, stated once in anan_onnx.options


@public
def load_splits(
    path: str | os.PathLike[str],
    spec: InputSpec,
    *,
    layout: Layout | None = None,
    val_fraction: float = _SPLIT.val_fraction,
    test_fraction: float = _SPLIT.test_fraction,
    seed: int = _SPLIT.seed,
    positive: Sequence[int | str] | None = _SPLIT.positive,
    max_per_class: int | None = _SPLIT.max_per_class,
    progress: bool | None = None,
    lazy: bool = False,
) -> Splits:
    """Loads a labelled image set and splits it into train / val / test.

    Splits drawn here are stratified on the original classes and made exactly as
    ``research/train_base_cnn.py`` makes them (scikit-learn ``train_test_split`` on the sorted
    file list with ``random_state=seed``: first test, then validation from the rest), so
    with the same seed and fractions the test images are the ones the base CNN never saw.
    The same call gives the same split on any machine; ``info`` records it.

    Args:
        path: a folder (layouts ``folder`` and ``train_test``) or an ``.npz`` file.
        spec: the model input; images are converted, resized and scaled to it.
        layout: ``"folder"``, ``"train_test"`` or ``"npz"``; default: recognised from
            ``path`` (a folder with ``train/`` and ``test/`` is ``train_test``).
        val_fraction: share of the training images (what is left after the test split)
            drawn for validation when the source has no validation split; 0 gives none.
        test_fraction: share of the whole folder drawn for test (layout ``folder`` only);
            0 gives no test split.
        seed: seed of the random splits and of ``max_per_class`` sampling.
        positive: binarise: these original classes (indices or names) become label 1,
            the others label 0, with classes ``["negative", "positive"]``.
        max_per_class: keep at most this many images of each class (after binarisation),
            drawn at random with ``seed``: of the whole folder before splitting for
            ``folder``, of each stored split otherwise. Handy for quick runs, but the split
            then differs from the training tool's.
        progress: progress bars (default: when loading more than 200 images on a terminal).
        lazy: do not read the images now: each split's ``images`` is a
            :class:`~anan_onnx.evaluation.lazy_images.LazyImages` that reads the slices asked
            for, so memory does not grow with the number of images (``tune``, ``evaluate``).
            An unreadable image is then reported when it is first read.

    Returns:
        The splits; a split the source does not have is ``None``.

    Raises:
        AnanError: missing path, empty or single-class data, unreadable image (named),
            malformed ``.npz``, or invalid arguments.

    Example:
        >>> s = load_splits("cats_dogs", InputSpec("NHWC", 128, 128, 3), seed=1)  # doctest: +SKIP
        >>> s.info["counts"]["val"]  # doctest: +SKIP
        {'cats': 42, 'dogs': 42}
    """
    root = Path(path)
    checked = SplitOptions(val_fraction, test_fraction, seed, positive, max_per_class)
    val_fraction, test_fraction, seed = checked.val_fraction, checked.test_fraction, checked.seed
    positive, max_per_class = checked.positive, checked.max_per_class
    kind = _detect_layout(root, layout)
    if kind == "npz":
        source = NpzSource(root)
        classes, stored = source.classes, source.listings
    else:
        classes, stored = _list_folders(root, kind)
    original_classes = list(classes)
    positive_idx = None
    if positive is not None:
        positive_idx = positive_indices(positive, classes, root)
        stored = {s: _binarise(lst, positive_idx) for s, lst in stored.items()}
        classes = ["negative", "positive"]
    for name, lst in stored.items():
        _check_classes(name, lst, classes, root)
    if max_per_class is not None:
        stored = {
            s: lst.take(cap(lst.targets, max_per_class, seed, salt=i))
            for i, (s, lst) in enumerate(stored.items())
        }
    listings, how = split_listings(
        stored, kind, val_fraction, test_fraction, seed, original_classes
    )
    info: dict[str, Any] = {
        "layout": kind,
        "source": str(root),
        "seed": int(seed),
        "val_fraction": val_fraction,
        "test_fraction": test_fraction if kind == "folder" else None,
        "split": how,
        "classes": classes,
        "original_classes": original_classes,
        "positive": positive_idx,
        "max_per_class": max_per_class,
        "input": spec.to_metadata(),
        "counts": {},
        "files": {},
    }
    datasets: dict[str, Dataset | None] = dict.fromkeys(SPLITS)
    for name in SPLITS:
        if listings.get(name) is None:
            continue
        lst = listings[name]
        images: np.ndarray | LazyImages
        if kind == "npz":
            store = _store_of(how, name)
            if lazy:
                rows = source.arrays[f"{store}_images"][np.asarray(lst.refs, dtype=np.int64)]
                images = LazyImages.pixels(rows, spec)
            else:
                images = source.images(store, lst.refs, spec, progress)
            paths = [f"npz:{store}[{i}]" for i in lst.refs]
            files = paths
        else:
            paths = [str(root / r) for r in lst.refs]
            if lazy:
                images = LazyImages.files(paths, spec)
            else:
                images, _, _ = load_images(paths, spec, progress=progress, desc=f"loading {name}")
            files = list(lst.refs)
        ds = Dataset(images, lst.targets.astype(np.int64), list(classes), paths)
        datasets[name] = ds
        info["counts"][name] = ds.counts()
        info["files"][name] = files
    return Splits(datasets["train"], datasets["val"], datasets["test"], info)


def _store_of(how: dict[str, str], split: str) -> str:
    """The stored split a split's images come from (``val`` drawn from ``train`` → train)."""
    return how[split].split(":")[0]


# --- arguments ------------------------------------------------------------------------------


def _detect_layout(root: Path, layout: str | None) -> str:
    if layout is not None and layout not in DATASET_LAYOUTS:
        raise AnanError(
            f"layout must be one of {', '.join(DATASET_LAYOUTS)}, got {layout!r}: or leave it "
            "out to recognise it"
        )
    if not root.exists():
        raise AnanError(f"data set {root} does not exist: check the path")
    if not root.is_file() and not root.is_dir():  # a FIFO or device: reading it would hang
        raise AnanError(
            f"data set {root} is {describe_kind(root.stat().st_mode)}: pass a folder of class "
            "folders or a MedMNIST-style .npz file"
        )
    if root.is_file():
        if layout in (None, "npz") and root.suffix.lower() == ".npz":
            return "npz"
        raise AnanError(
            f"data set {root} is a file, not a folder: pass a folder of class folders or a "
            "MedMNIST-style .npz"
        )
    if layout == "npz":
        raise AnanError(f"data set {root} is a folder, not an .npz file: pass the .npz file")
    names = {d.name.lower() for d in _subdirs(root)}
    has_split = "train" in names and "test" in names
    if layout == "train_test" and not has_split:
        raise AnanError(
            f"data set {root} has no train/ and test/ folders: use layout 'folder' or add them"
        )
    return layout or ("train_test" if has_split else "folder")


def positive_indices(positive: Sequence[int | str], classes: list[str], root: Path) -> list[int]:
    if isinstance(positive, (str, int)):
        positive = [positive]
    indices: list[int] = []
    for p in positive:
        if isinstance(p, str) and p in classes:
            indices.append(classes.index(p))
        elif isinstance(p, (int, np.integer)) and not isinstance(p, bool) and 0 <= p < len(classes):
            indices.append(int(p))
        else:
            raise AnanError(
                f"positive class {p!r} is not among the {len(classes)} classes of {root} "
                f"({_show_classes(classes)}): pass class indices 0..{len(classes) - 1} or names"
            )
    indices = sorted(set(indices))
    if not indices or len(indices) == len(classes):
        raise AnanError(
            f"positive={list(positive)} leaves no negative or no positive class: list some, "
            "not all, of the classes"
        )
    return indices


def _show_classes(classes: list[str]) -> str:
    shown = [f"{i}={c}" for i, c in enumerate(classes[:10])]
    return ", ".join(shown) + (", ..." if len(classes) > 10 else "")


def _binarise(lst: Listing, positive: list[int]) -> Listing:
    return Listing(lst.refs, lst.labels, np.isin(lst.labels, positive).astype(np.int64))


def _check_classes(name: str, lst: Listing, classes: list[str], root: Path) -> None:
    """Images to train or draw splits from must hold two classes; a stored test set may not."""
    if len(lst.targets) == 0:
        raise AnanError(f"data set {root} has no images in its {name} split: add images")
    present = np.unique(lst.targets)
    if len(present) < 2 and name in ("all", "train"):
        only = classes[int(present[0])]
        raise AnanError(
            f"data set {root} has a single class ({only}) in its {name} images: a classifier "
            "needs images of two or more classes"
        )


# --- folders --------------------------------------------------------------------------------


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _list_images(folder: Path) -> list[str]:
    """Names of the image files directly in ``folder``, sorted.

    Not recursive, like ``research/train_base_cnn.py``, so both list the same files in the
    same order (which the seeded split depends on).
    """
    return sorted(f.name for f in folder.iterdir() if _is_image(f.name) and f.is_file())


def _class_folders(folder: Path, root: Path) -> dict[str, list[str]]:
    """Class name → image paths relative to ``root``, for the class folders of ``folder``."""
    where = "" if folder == root else f"{folder.relative_to(root)}/ of "
    classes = _subdirs(folder)
    if not classes:
        loose = [f.name for f in folder.iterdir() if f.is_file() and _is_image(f.name)]
        hint = (
            "put each class's images in its own sub-folder"
            if loose
            else "add one sub-folder of images per class"
        )
        raise AnanError(f"{where}data set {root} has no class folders: {hint}")
    out: dict[str, list[str]] = {}
    for d in classes:
        images = _list_images(d)
        if not images:
            warnings.warn(
                f"class folder {d} has no images ({', '.join(IMAGE_EXTENSIONS)}): skipped, "
                "its class is absent from this split",
                UserWarning,
                stacklevel=5,
            )
        out[d.name] = [str(d.relative_to(root) / f) for f in images]
    filled = [name for name, images in out.items() if images]
    if len(classes) < 2:
        raise AnanError(
            f"{where}data set {root} has a single class folder ({classes[0].name}): a "
            "classifier needs two or more classes"
        )
    if not filled:
        raise AnanError(f"{where}data set {root} has no images in its class folders: add images")
    return out


def _list_folders(root: Path, kind: str) -> tuple[list[str], dict[str, Listing]]:
    """(classes, listing per stored split: ``all`` for a folder, else train/val/test)."""
    if kind == "folder":
        folders = {"all": root}
    else:
        by_name = {d.name.lower(): d for d in _subdirs(root)}
        folders = {"train": by_name["train"], "test": by_name["test"]}
        val = next((by_name[n] for n in _VAL_NAMES if n in by_name), None)
        if val is not None:
            folders["val"] = val
    per_split = {s: _class_folders(f, root) for s, f in folders.items()}
    first = next(iter(per_split))
    for s, found in per_split.items():
        if sorted(found) != sorted(per_split[first]):
            raise AnanError(
                f"{folders[s].name}/ of data set {root} has classes {sorted(found)} but "
                f"{folders[first].name}/ has {sorted(per_split[first])}: use the same class "
                "folders in each split"
            )
    # a class without images in any split is absent (its empty folders were warned about)
    classes = sorted(c for c in per_split[first] if any(f[c] for f in per_split.values()))
    if len(classes) < 2:
        raise AnanError(
            f"data set {root} has images of one class only ({', '.join(classes)}): a "
            "classifier needs two or more classes"
        )
    listings = {}
    for s, found in per_split.items():
        refs = [r for c in classes for r in found[c]]
        labels = np.concatenate(
            [np.full(len(found[c]), i, np.int64) for i, c in enumerate(classes)]
        )
        listings[s] = Listing(refs, labels, labels)
    return classes, listings
