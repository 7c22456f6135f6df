"""Names of the ``metadata_props`` keys that anan-onnx writes into ONNX models.

Keys are flat strings so that any onnxruntime binding (C++, Node.js, ...) can read them
with its custom-metadata API. A *base* model exported by anan-onnx carries the
preprocessing keys only; an *ANAN* model carries all of them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from anan_onnx._public import public
from anan_onnx.errors import AnanError, first_line
from anan_onnx.params import PARAMS

if TYPE_CHECKING:  # only annotations: reading metadata must not import onnx
    import onnx

__all__ = [
    "DEFAULT_SCALE",
    "FORMAT",
    "PARAM_KEYS",
    "PREPROCESS_FROM",
    "PREPROCESS_KEYS",
    "PREPROCESS_NOTE",
    "SOURCES",
    "class_names",
    "is_anan",
    "preprocess_sources",
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
#: Keys describing how raw images become model input (docs/preprocessing.md; the values
#: and their defaults are defined by :class:`anan_onnx.runtime.inputs.InputSpec`).
#: ``channel_order``, ``resize`` and ``aspect`` may be absent (older models): RGB, bilinear,
#: stretch.
PREPROCESS_KEYS = (
    "layout",
    "height",
    "width",
    "channels",
    "scale",
    "offset",
    "channel_order",
    "resize",
    "aspect",
)
#: Where each preprocessing field came from, a JSON object ``{field: read|given|assumed}``
#: (informational), and one line saying why (e.g. the model's own Rescaling layer).
PREPROCESS_FROM = "preprocess_from"
PREPROCESS_NOTE = "preprocess_note"
#: The provenance values of :data:`PREPROCESS_FROM`.
SOURCES = ("read", "given", "assumed")
#: The pixel scale of a model that records none: pixels 0-255 become [0, 1].
DEFAULT_SCALE = 1 / 255
#: Other keys: ``format``, ``tool_version``, ``target_layer``, ``target_keras_layer``,
#: ``target_reason``, ``source_sha256``, ``source_file``, ``tunable``, ``k_max``, ``batch``,
#: ``scaling``, ``steps``, ``classes`` (a JSON list of class names,
#: index = label); a base model exported from Keras also has ``keras_convs``,
#: ``keras_before`` (JSON, see anan_onnx/convert/keras_layers.py) and ``keras_name`` (the
#: Keras model's name: a keras.applications name proposes its preprocessing, see
#: anan_onnx/convert/preprocessing.py).


@public
def read_metadata(model: onnx.ModelProto | str | Path) -> dict[str, str]:
    """Returns the ``anan.*`` metadata of ``model`` (a ModelProto or an .onnx path, like
    ``Session`` and ``verify_models``) without the prefix.

    Raises:
        AnanError: a path that is missing, a Keras file or not ONNX.
    """
    if isinstance(model, (str, os.PathLike)):
        from anan_onnx.model_io import require_onnx

        model = _load_without_data(require_onnx(model))
    return {p.key[len(PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}


def preprocess_sources(md: Mapping[str, str]) -> dict[str, str] | None:
    """The recorded :data:`PREPROCESS_FROM` provenance, ``{field: read|given|assumed}``
    (entries with another value left out); ``None`` when absent or not a JSON object (it
    is informational: never a reason to refuse a model). The one reader of the key.

    Example:
        >>> preprocess_sources({"preprocess_from": '{"scale": "read", "x": 1}'})
        {'scale': 'read'}
        >>> preprocess_sources({}) is None
        True
    """
    import json

    try:
        value = json.loads(md.get(PREPROCESS_FROM, "null"))
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): v for k, v in value.items() if isinstance(v, str) and v in SOURCES}


def _load_without_data(path: Path) -> onnx.ModelProto:
    import onnx

    try:  # the weights (external data included) are not needed for the metadata
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise AnanError(
            f"{path} is not a readable ONNX model ({first_line(exc)}): check the file"
        ) from None


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
