"""anan-onnx: astrocyte-modulated CNNs (ANAN) as standard ONNX graphs."""

from __future__ import annotations

from ._errors import AnanError
from ._params import AnanParams

__version__ = "0.1.0"

__all__ = ["AnanError", "AnanParams", "__version__"]
