"""JSON for every file and stdout document anan-onnx writes, under one cleaning rule.

Numbers that are not finite (NaN, ±Inf) become ``null``: JSON has no such numbers, and
anan-onnx never prints one as a result (a missing score, e.g. ROC AUC of a one-class
split, is ``null``). numpy scalars and arrays become Python numbers and lists, paths become
strings, tuples become lists and mapping keys strings.

Example:
    >>> import numpy as np
    >>> dumps({"f1": float("nan"), "n": np.int64(3)})
    '{\\n  "f1": null,\\n  "n": 3\\n}'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["clean", "dumps", "to_bytes"]


def clean(value: Any) -> Any:
    """``value`` with only JSON types in it, non-finite numbers as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy
        return clean(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    return value


def dumps(value: Any) -> str:
    """Cleaned, indented JSON text; anything else that is not JSON raises TypeError."""
    return json.dumps(clean(value), indent=2, allow_nan=False)


def to_bytes(value: Any) -> bytes:
    """:func:`dumps` with a final newline, as bytes: the content of a ``.json`` file."""
    return (dumps(value) + "\n").encode()
