"""``training.json``: what ``research/train_base_cnn.py`` records beside the models it trains.

It names the classes, the data root, the train/test files and, per fold, the validation
images (``val_indices`` into the train files). ``tune`` and ``evaluate`` take each model's
validation images from it (never images the model was trained on), and ``convert`` takes
the class names from it.

The data root is stored relative to the file (``"../../shared/data/cats_dogs"``), so a
checkout can move; records written before that hold absolute paths, which still work.

Example:
    >>> find_training_record(Path("models/catsdogs_cnn.keras"))["classes"]  # doctest: +SKIP
    ['cats', 'dogs']
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from anan_onnx.errors import AnanError, first_line

__all__ = ["check_record", "find_training_record", "fold_of", "relative_root", "resolve_root"]


def find_training_record(model: str | Path) -> dict[str, Any] | None:
    """``<stem>.training.json`` beside a model, or the ``training.json`` of its fold folder.

    A folder's ``training.json`` counts only when it lists this model among its folds. The
    returned record's ``data_root`` is resolved against the file's folder (``None`` if none).

    Raises:
        AnanError: the record is not readable JSON.
    """
    model = Path(model)
    stem = _stem(model)
    for candidate in (model.with_name(f"{stem}.training.json"), model.with_name("training.json")):
        if not candidate.is_file():
            continue
        try:
            record = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AnanError(
                f"{candidate} is not readable JSON ({first_line(exc)}): fix or remove it"
            ) from None
        except RecursionError:
            raise AnanError(f"{candidate} is nested too deeply for a training record") from None
        check_record(record, candidate)
        if candidate.name == "training.json" and fold_of(model, record) is None:
            continue  # a training.json about other models
        record["data_root"] = resolve_root(candidate, record.get("data_root"))
        record["record_file"] = str(candidate)
        return record
    return None


#: The fields of a record and what each must be (absent or null is allowed for all).
_LISTS = {
    "classes": str,
    "train_files": str,
    "test_files": str,
    "train_labels": int,
    "test_labels": int,
}


def check_record(record: object, where: str | Path) -> dict[str, Any]:
    """``record`` if it has the shape ``research/train_base_cnn.py`` writes: lists of strings
    (classes, files), of non-negative integers (labels, each fold's ``val_indices``),
    ``folds`` a list of objects, ``data_root`` a string.

    Raises:
        AnanError: naming the first field that is not so.
    """
    if not isinstance(record, dict):
        raise AnanError(f"{where} holds no JSON object: fix or remove it")
    if record.get("data_root") is not None and not isinstance(record["data_root"], str):
        raise _bad(where, "data_root", "a path (a string)")
    for key, kind in _LISTS.items():
        _check_list(record.get(key), kind, where, key)
    folds = record.get("folds")
    if folds is not None and not (
        isinstance(folds, list) and all(isinstance(f, dict) for f in folds)
    ):
        raise _bad(where, "folds", "a list of objects")
    for i, fold in enumerate(folds or []):
        _check_list(fold.get("val_indices"), int, where, f"folds[{i}].val_indices")
        if fold.get("model") is not None and not isinstance(fold["model"], str):
            raise _bad(where, f"folds[{i}].model", "a file name (a string)")
    return record


def _check_list(value: object, kind: type, where: str | Path, key: str) -> None:
    if value is None:
        return
    if kind is str:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not ok:
            raise _bad(where, key, "a list of strings")
        return
    ok = isinstance(value, list) and all(
        type(v) is int and 0 <= v < 2**53 for v in value  # no bools, floats or 1e30
    )
    if not ok:
        raise _bad(where, key, "a list of non-negative integers")


def _bad(where: str | Path, key: str, what: str) -> AnanError:
    return AnanError(f"{where}: {key} must be {what}: fix or remove the file (re-train)")


def fold_of(model: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The fold entry of ``record`` that trained ``model`` (a single fold for a copied model)."""
    stem = _stem(model)
    folds = record.get("folds") or []
    for fold in folds:
        name = str(fold.get("model", ""))
        if name[: -len(Path(name).suffix) or None] == stem:
            return fold
    return folds[0] if len(folds) == 1 and not re.fullmatch(r"fold\d+", stem) else None


def resolve_root(record_file: str | Path, root: object) -> str | None:
    """A recorded data root as a path: relative ones are relative to ``record_file``'s folder."""
    if not root:
        return None
    path = Path(str(root))
    if not path.is_absolute():
        path = Path(os.path.normpath(Path(record_file).parent / path))
    return str(path)


def relative_root(root: str | Path, record_file: str | Path) -> str:
    """``root`` as ``training.json`` at ``record_file`` records it: relative to its folder."""
    folder = Path(record_file).absolute().parent
    return Path(os.path.relpath(Path(root).absolute(), folder)).as_posix()


def _stem(model: Path) -> str:
    return model.name[: -len(model.suffix)] if model.suffix else model.name
