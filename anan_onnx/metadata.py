"""Names of the ``metadata_props`` keys that anan-onnx writes into ONNX models.

Keys are flat strings so that any onnxruntime binding (C++, Node.js, ...) can read them
with its custom-metadata API. A *base* model exported by anan-onnx carries the
preprocessing keys only; an *ANAN* model carries all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from anan_onnx.params import PARAMS

if TYPE_CHECKING:  # only annotations: reading metadata must not import onnx
    import onnx

__all__ = [
    "DEFAULT_SCALE",
    "FORMAT",
    "PARAM_KEYS",
    "PREPROCESS_KEYS",
    "class_names",
    "is_anan",
    "read_metadata",
    "sha256_file",
    "write_metadata",
]

#: Version of this metadata layout.
FORMAT = "1"

PREFIX = "anan."
#: ANAN parameter keys (``anan.k`` ...), from :data:`anan_onnx.params.PARAMS`; their
#: presence marks an ANAN model.
PARAM_KEYS: tuple[str, ...] = tuple(p.metadata_key for p in PARAMS)
#: Keys describing how raw images become model input.
PREPROCESS_KEYS = ("layout", "height", "width", "channels", "scale", "offset")
#: The pixel scale of a model that records none: pixels 0-255 become [0, 1].
DEFAULT_SCALE = 1 / 255
#: Other keys: ``format``, ``tool_version``, ``target_layer``, ``target_keras_layer``,
#: ``target_reason``, ``source_sha256``, ``source_file``, ``tunable``, ``k_max``, ``batch``,
#: ``scaling``, ``steps``, ``classes`` (a JSON list of class names,
#: index = label); a base model exported from Keras also has ``keras_convs`` and
#: ``keras_before`` (JSON, see anan_onnx/convert/keras_layers.py).


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """Returns the ``anan.*`` metadata of ``model`` without the prefix."""
    return {p.key[len(PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}


def write_metadata(model: onnx.ModelProto, values: Mapping[str, object]) -> None:
    """Sets ``anan.<key>`` = ``str(value)`` for each item, replacing existing keys."""
    wanted = {PREFIX + k: str(v) for k, v in values.items()}
    kept = [p for p in model.metadata_props if p.key not in wanted]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in wanted.items():
        model.metadata_props.add(key=key, value=value)


def class_names(metadata: dict[str, str]) -> list[str] | None:
    """The class names recorded as ``anan.classes`` (a JSON list of strings), or ``None``.

    Accepts metadata with or without the ``anan.`` prefix. A value that is not a JSON list
    of strings is ignored (``None``): names are a convenience, never a reason to fail.

    Example:
        >>> class_names({"classes": '["cat", "dog"]'})
        ['cat', 'dog']
        >>> class_names({"k": "4"}) is None
        True
    """
    import json

    raw = metadata.get("classes", metadata.get(PREFIX + "classes"))
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return None
    return names


def is_anan(metadata: dict[str, str]) -> bool:
    """Whether metadata (as returned by :func:`read_metadata`) describes an ANAN model."""
    return PARAM_KEYS[0] in metadata


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
