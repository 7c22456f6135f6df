"""What the route modules need of the graph builder: a structural type, so that they are typed
without importing the builder's module (which imports them).

The rewrite's builder (``rewrite.graph``) satisfies it: it collects named nodes and
constants (in the model's float dtype) for the splice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnx_ir as ir

__all__ = ["Builder"]


class Builder(Protocol):
    """Emits the nodes and constants of the ANAN subgraph."""

    dtype: np.dtype  # the model's float dtype
    unit: ir.Value | None  # the initial gains (ones): products with it are skipped

    def const(self, name: str, array: object) -> ir.Value:
        """A float constant (the model's dtype) named ``name``."""
        ...

    def scalar(self, value: float) -> ir.Value:
        """A scalar float constant, one per value however often it is used."""
        ...

    def const_int(self, name: str, values: list[int]) -> ir.Value:
        """An int64 constant named ``name``."""
        ...

    def op(
        self, op_type: str, inputs: Sequence[ir.Value | None], name: str, **attrs: object
    ) -> ir.Value:
        """A node ``name`` of ``op_type`` with one output, also named ``name``."""
        ...

    def add(self, node: ir.Node) -> ir.Value:
        """Adds ``node``; returns its first output."""
        ...
