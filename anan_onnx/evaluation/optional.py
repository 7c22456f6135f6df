"""The evaluation's optional dependencies (scikit-learn, SciPy, matplotlib), imported on use.

They come with the ``eval`` extra (see :func:`anan_onnx.install_hint.install_hint`);
``import anan_onnx`` and inference work without them, so every evaluation module imports
them through :func:`need` at call time.
"""

from __future__ import annotations

import importlib
from typing import Any

from anan_onnx.errors import AnanError
from anan_onnx.install_hint import install_hint

__all__ = ["need"]


def need(module: str) -> Any:
    """Imports an optional dependency with a one-line fix when it is missing.

    Example:
        >>> need("math").sqrt(4.0)
        2.0
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AnanError(
            f"{module.split('.')[0]} is needed for evaluation: {install_hint('eval')}"
        ) from None
