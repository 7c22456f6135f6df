"""Class names recorded in a converted model (``anan.classes``, a JSON list).

Output column i (or, for a single sigmoid output, label i of ``p > 0.5``) is class
``classes[i]``. The names come from ``convert --classes`` (a comma list, or a data folder
whose sub-folders are the classes, as ``load_splits`` numbers them: sorted by name), else
from the ``training.json`` beside the source model.

Example:
    >>> parse_classes("cats, dogs")
    ['cats', 'dogs']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import onnx

from anan_onnx.errors import AnanError
from anan_onnx.text import check_name
from anan_onnx.training_record import find_training_record

__all__ = [
    "check_classes",
    "class_count",
    "folder_classes",
    "parse_classes",
    "recorded_classes",
]


def parse_classes(text: str) -> list[str]:
    """``--classes``: a data folder (its class sub-folders) or a comma list of names."""
    path = Path(text)
    if "," not in text and path.is_dir():  # a comma list is no folder (nor too long a name)
        return [check_name(n) for n in folder_classes(path)]
    names = [check_name(t.strip()) for t in text.split(",")]
    if len(names) < 2 or not all(names):
        raise AnanError(
            f"--classes {text!r} is neither a folder nor a comma list of two or more names: "
            "pass e.g. --classes cats,dogs or the data set folder"
        )
    return names


def folder_classes(folder: Path) -> list[str]:
    """The class sub-folders of a data set (of its ``train/`` when it has one), sorted."""
    inner = folder / "train" if (folder / "train").is_dir() else folder
    names = sorted(d.name for d in inner.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(names) < 2:
        raise AnanError(
            f"{inner} has {len(names)} class sub-folder(s): pass a data set folder with one "
            "sub-folder per class, or --classes a,b"
        )
    return names


def recorded_classes(source: str | Path) -> list[str] | None:
    """The ``classes`` of the ``training.json`` beside ``source``, if any."""
    record = find_training_record(source)
    names = (record or {}).get("classes")
    return [str(n) for n in names] if isinstance(names, list) and names else None


def check_classes(names: Sequence[str], model: onnx.ModelProto) -> str:
    """``names`` as the JSON list to record, checked against the model's first output.

    Raises:
        AnanError: duplicate or empty names, or a count the output cannot have.
    """
    names = [check_name(str(n)) for n in names]  # printable, bounded (anan_onnx.text)
    if len(set(names)) != len(names) or not all(n.strip() for n in names):
        raise AnanError(f"class names must be distinct and non-empty, got {names}")
    width = _output_width(model)
    expected = 2 if width == 1 else width
    if expected is not None and len(names) != expected:
        raise AnanError(
            f"{len(names)} class names ({', '.join(names)}) for a model with "
            f"{'one sigmoid output (2 classes)' if width == 1 else f'{width} outputs'}: "
            f"pass {expected} names with --classes"
        )
    return json.dumps(names)


def class_count(model: onnx.ModelProto) -> int | None:
    """The number of classes the model's first output holds: 2 for one sigmoid column,
    C for C columns, ``None`` when its shape does not say."""
    width = _output_width(model)
    return 2 if width == 1 else width


def _output_width(model: onnx.ModelProto) -> int | None:
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) == 1:
        return 1
    last = dims[-1] if len(dims) == 2 else None
    return last.dim_value if last is not None and last.HasField("dim_value") else None
