"""Which output of the model each class of a data set is: classes matched by name.

A data set numbers its classes by folder name (or by its ``.npz`` labels); a model numbers
them by how it was trained. ``tune`` and ``evaluate`` never assume the two agree:

1. **The model records class names** (``anan.classes``, or the ``training.json`` beside a
   Keras model): each data class is the model class of the same name, whatever the order.
   Names are compared exactly, else by :func:`name_key` (case-folded, every run of
   characters other than letters and digits as one ``-``), because a folder cannot be
   called ``T-shirt/top``: ``T-shirt-top``, ``t_shirt_top`` and ``T-Shirt Top`` all match
   it. A data class that matches no model class is refused, with both lists. Model classes
   missing from the data set are allowed while two or more are present: the scores then run
   over the present classes (a subset of a multi-class model).
2. **The model records none**: data classes named by output index (``0``, ``1``, ...; an
   ``.npz`` without names, MNIST-style folders) are those outputs; otherwise the data
   classes in name order are outputs 0, 1, ... -- they must then be as many as the outputs,
   and the order assumed is said (:attr:`ClassMap.note`).
3. **Binarised** data (``positive=``): ``negative`` is label 0 and ``positive`` label 1 of a
   binary model, as the option says.

Example:
    >>> m = match_classes(["T-shirt/top", "Trouser", "Bag"], ["bag", "T-shirt-top"], 3)
    >>> m.index, m.present
    ([2, 0], [0, 2])
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from anan_onnx.errors import AnanError

__all__ = ["BINARISED", "ClassMap", "match_classes", "model_classes", "name_key"]

#: The class names of a data set binarised with ``positive=`` (label 0, label 1).
BINARISED: tuple[str, str] = ("negative", "positive")
_SHOWN = 12  # names listed in a message before "..."


def name_key(name: str) -> str:
    """The form two class names are compared in when they are not equal.

    Example:
        >>> name_key("T-shirt/top") == name_key("t_shirt top")
        True
    """
    return re.sub(r"[\W_]+", "-", name.casefold()).strip("-")


@dataclasses.dataclass(frozen=True)
class ClassMap:
    """Data set class ``i`` is model output ``index[i]``.

    Attributes:
        model_classes: the model's class names (output order); for a model that records
            none, the data set's names by order, or ``"0"``, ``"1"``, ...
        data_classes: the data set's class names, in its label order.
        index: the model output of each data class.
        how: ``"name"``, ``"index"``, ``"order"`` or ``"positive"`` (rules 1, 2, 2, 3).
        named: whether the model records its class names.
    """

    model_classes: list[str]
    data_classes: list[str]
    index: list[int]
    how: str
    named: bool

    @property
    def present(self) -> list[int]:
        """The model outputs the data set's classes are, sorted (by its class list: one
        split may hold fewer; scores average over a split's own, see
        :func:`~anan_onnx.evaluation.scores.present_classes`)."""
        return sorted(self.index)

    @property
    def subset(self) -> bool:
        """Whether some of the model's classes are absent from the data set."""
        return len(self.present) < len(self.model_classes)

    def labels(self, data_labels: np.ndarray) -> np.ndarray:
        """Data set labels as model output indices."""
        return np.asarray(self.index, np.int64)[np.asarray(data_labels, np.int64)]

    def classes_to_record(self) -> list[str] | None:
        """The names an emitted model records: the model's own, or the data set's when they
        name every output (``None``: nothing to record)."""
        if self.named or self.how == "positive" or (self.how == "order" and not self.subset):
            return list(self.model_classes)
        return None

    @property
    def note(self) -> str | None:
        """What the user must be told about the mapping (``None``: names matched fully)."""
        pairs = ", ".join(f"{d}={i}" for d, i in zip(self.data_classes, self.index, strict=True))
        if self.how == "order":
            return (
                f"the model records no class names: the data set's classes in name order are "
                f"taken as its outputs ({pairs}); record the names (convert --classes) to "
                "match them by name"
            )
        parts = []
        if self.how == "name" and any(
            d != self.model_classes[i] for d, i in zip(self.data_classes, self.index, strict=True)
        ):
            parts.append(f"matched by name ({pairs})")
        if self.subset:
            absent = [c for i, c in enumerate(self.model_classes) if i not in self.index]
            parts.append(
                f"{len(self.present)} of the model's {len(self.model_classes)} classes present: "
                f"scores over those (absent: {_show(absent)})"
            )
        return "; ".join(parts) or None

    def to_json(self) -> dict[str, Any]:
        """The mapping, JSON-ready (``best.json``, ``evaluation.json``)."""
        return {
            "model": list(self.model_classes),
            "data": list(self.data_classes),
            "index": list(self.index),
            "matched_by": self.how,
            "present": [self.model_classes[i] for i in self.present],
            "subset": self.subset,
        }


def model_classes(metadata: dict[str, str], source: object = None) -> list[str] | None:
    """The class names a base model records, else those of the ``training.json`` beside its
    source file (as ``convert`` would record them), else ``None``."""
    from anan_onnx.convert.classes import recorded_classes
    from anan_onnx.metadata import class_names

    names = class_names(metadata)
    if names is None and source is not None:
        names = recorded_classes(str(source))
    return names


def match_classes(
    model: Sequence[str] | None,
    data: Sequence[str],
    width: int | None,
    *,
    binarised: bool = False,
) -> ClassMap:
    """Maps the data set's classes onto the model's outputs (rules in the module docstring).

    Args:
        model: the model's recorded class names, or ``None``.
        data: the data set's class names, in its label order.
        width: the model's number of classes (2 for one sigmoid output), ``None`` if unknown.
        binarised: ``data`` is ``negative``/``positive`` from ``positive=``.

    Raises:
        AnanError: unknown names, fewer than two classes present, or classes the model's
            outputs cannot hold.
    """
    data = [str(d) for d in data]
    if model is not None and width is not None and len(model) != width:
        model = None  # names that do not fit the outputs are no names (metadata.class_names)
    if binarised:
        return _binarised(list(model) if model is not None else None, data, width)
    if model is not None:
        return _by_name(list(model), data)
    return _unnamed(data, width)


def _by_name(model: list[str], data: list[str]) -> ClassMap:
    exact = {name: i for i, name in enumerate(model)}
    keys: dict[str, list[int]] = {}
    for i, name in enumerate(model):
        keys.setdefault(name_key(name), []).append(i)
    index, unknown = [], []
    for name in data:
        found = exact.get(name)
        if found is None and len(keys.get(name_key(name), [])) == 1:
            found = keys[name_key(name)][0]
        if found is None:
            unknown.append(name)
        else:
            index.append(found)
    if unknown:
        raise AnanError(
            f"the data set's classes {_show(unknown)} are not among the model's classes "
            f"({_show(model)}); the data set has {_show(data)}: name the class folders after "
            "the model's classes (compared ignoring case and punctuation)"
        )
    if len(set(index)) != len(index):
        twice = [d for d, i in zip(data, index, strict=True) if index.count(i) > 1]
        raise AnanError(
            f"the data set's classes {_show(twice)} all match the same model class: keep one "
            "folder per model class"
        )
    if len(index) < 2:
        raise AnanError(
            f"the data set has one of the model's classes ({_show(data)}; the model has "
            f"{_show(model)}): scores need images of two or more classes"
        )
    return ClassMap(model, data, index, "name", True)


def _unnamed(data: list[str], width: int | None) -> ClassMap:
    # ASCII digits only: "²".isdigit() is true but int("²") fails
    indices = [int(d) for d in data] if all(re.fullmatch(r"[0-9]+", d) for d in data) else None
    if indices is not None and (width is None or max(indices) < width):
        if len(set(indices)) != len(indices):
            twice = [d for d, i in zip(data, indices, strict=True) if indices.count(i) > 1]
            raise AnanError(
                f"the data set's classes {_show(twice)} all name the same model output: keep "
                "one folder per output index (0, 1, ...)"
            )
        outputs = [str(i) for i in range(width or max(indices) + 1)]
        return ClassMap(outputs, data, indices, "index", False)
    if width is not None and len(data) != width:
        binary = width == 2 and len(data) > 2
        raise AnanError(
            f"the model records no class names and has {width} classes "
            f"{'(one sigmoid output or two outputs) ' if binary else ''}but the data set has "
            f"{len(data)} ({_show(data)}), so they cannot be matched: "
            + (
                "pass --positive CLASSES to binarise the data set"
                if binary
                else "record the model's class names (anan-onnx convert --classes), or name "
                "the class folders by output index (0, 1, ...)"
            )
        )
    return ClassMap(list(data), data, list(range(len(data))), "order", False)


def _binarised(model: list[str] | None, data: list[str], width: int | None) -> ClassMap:
    if width is not None and width != 2:
        raise AnanError(
            f"--positive binarises the data set, but the model outputs {width} class "
            "probabilities: leave --positive out, the model's classes are matched by name "
            "(a subset of them is enough)"
        )
    names = list(model) if model is not None else list(BINARISED)
    return ClassMap(names, data, [0, 1], "positive", model is not None)


def _show(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return f"[{shown}{', ...' if len(names) > _SHOWN else ''}]"
