"""Public objects name the package they are exported from, ``anan_onnx``.

``anan_onnx`` loads its names lazily (PEP 562), so the package ``__init__`` cannot set
``__module__`` the way onnx-ir's ``__set_module`` does without importing everything. Each
public object is therefore marked where it is defined, at import time: reprs, ``help()``,
tracebacks and pickles say ``anan_onnx.AnanError`` — the name users import — whether or not
the facade has been touched, and the value never changes at run time.
"""

from __future__ import annotations

from typing import TypeVar

#: the package users import public names from (``anan_onnx.__all__``)
PUBLIC_MODULE = "anan_onnx"

_T = TypeVar("_T")


def public(obj: _T) -> _T:
    """Mark a class or function exported by ``anan_onnx``: it reports that module.

    Put it outermost (above ``@dataclasses.dataclass``): dataclasses resolve their string
    annotations in the defining module while the class is built.
    """
    obj.__module__ = PUBLIC_MODULE  # type: ignore[attr-defined]
    return obj
