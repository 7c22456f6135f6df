"""What ``evaluate`` reads besides images: the model files of a folder, and params JSON files.

Example:
    >>> find_models("out/fire_folds")  # doctest: +SKIP
    [PosixPath('out/fire_folds/fold1.onnx'), PosixPath('out/fire_folds/fold2.onnx'), ...]
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from anan_onnx.errors import AnanError
from anan_onnx.params import PARAMS, AnanParams

__all__ = ["MODEL_SUFFIXES", "find_models", "read_params"]

#: Base model files ``evaluate`` finds in a folder.
MODEL_SUFFIXES: tuple[str, ...] = (".onnx", ".keras", ".h5")


def find_models(path: str | Path) -> list[Path]:
    """The model files to evaluate: ``path`` itself, or the fold models in a folder.

    In a folder, ``fold{i}.*`` files are taken in fold order (``.onnx`` preferred over
    ``.keras``/``.h5`` of the same fold: it is the same model, already exported); without
    fold files, every base model file in it. ANAN models (``*.anan.onnx``) are skipped.

    Raises:
        AnanError: nothing to evaluate.
    """
    path = Path(path)
    if not path.exists():
        raise AnanError(f"{path}: no such model file or folder: check the path")
    if path.is_file():
        return [path]
    files = [
        f
        for f in sorted(path.iterdir())
        if f.is_file() and f.suffix.lower() in MODEL_SUFFIXES and not f.name.endswith(".anan.onnx")
    ]
    by_stem: dict[str, Path] = {}
    for f in files:  # one file per model: .onnx wins
        stem = f.name[: -len(f.suffix)]
        if stem not in by_stem or f.suffix.lower() == ".onnx":
            by_stem[stem] = f
    folds = {s: f for s, f in by_stem.items() if re.fullmatch(r"fold\d+", s)}
    chosen = folds or {s: f for s, f in by_stem.items() if not s.endswith(".base")}
    if not chosen:
        raise AnanError(
            f"folder {path} holds no model files (.onnx, .keras, .h5): pass a model or a "
            "folder of fold models"
        )
    return [chosen[s] for s in sorted(chosen, key=_natural)]


def _natural(text: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def read_params(path: str | Path) -> AnanParams:
    """ANAN parameters from a JSON file: a ``tune`` result (``best.json``) or a plain dict.

    Example:
        >>> read_params("out/tune/best.json").k  # doctest: +SKIP
        4
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AnanError(f"params file {path} does not exist: check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnanError(
            f"params file {path} is not readable JSON ({exc}): pass best.json"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        data = data["params"]
    required = [p.name for p in PARAMS if p.required]
    if not isinstance(data, dict) or not set(required) <= set(data):
        raise AnanError(
            f"params file {path} has no {', '.join(required)}: pass the best.json written by "
            "anan-onnx tune"
        )
    return AnanParams(**{p.name: data[p.name] for p in PARAMS if p.name in data})
