"""The ANAN subgraph's builder: onnx-ir's :class:`onnx_ir.tape.Tape` with the rewrite's
naming and constant conventions.

The tape records the nodes and initializers; what it adds:

- every node has one output with the node's own name (``anan/...``), so that a graph
  printed or opened in Netron reads as the rewrite wrote it and names stay stable across
  conversions (the tape would number them ``val_0``...);
- float constants take the model's float dtype, and each scalar value becomes one
  initializer however often it is used;
- :attr:`GraphBuilder.unit`, the initial gains (ones), so that products with it are skipped;
- a name prefix: with several target layers each layer's subgraph is ``anan/<n>/...``
  (``prefix``), while the default ``anan/`` keeps a single-layer graph's names as they were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx_ir as ir
from onnx_ir.tape import Tape

__all__ = ["NAME_PREFIX", "GraphBuilder"]

#: The prefix of every node and constant the rewrite writes.
NAME_PREFIX = "anan/"


class GraphBuilder(Tape):
    """Records the nodes and constants of the ANAN subgraph for the splice."""

    def __init__(self, dtype: np.dtype, prefix: str = NAME_PREFIX) -> None:
        super().__init__()
        self.dtype = dtype  # the model's float dtype
        self.prefix = prefix  # replaces "anan/" in every name (one per target layer)
        self.unit: ir.Value | None = None  # the initial gains (ones)
        self._scalars: dict[float, ir.Value] = {}

    def const(self, name: str, array: object) -> ir.Value:
        """A float constant (the model's dtype) named ``name``."""
        return self.initializer(ir.tensor(np.asarray(array, self.dtype), name=self.name(name)))

    def const_int(self, name: str, values: list[int]) -> ir.Value:
        """An int64 constant named ``name``."""
        return self.initializer(ir.tensor(np.asarray(values, np.int64), name=self.name(name)))

    def name(self, name: str) -> str:
        """``name`` with this builder's prefix for ``anan/`` (the routes write ``anan/...``;
        a name derived from a value's name already has it)."""
        if name.startswith(NAME_PREFIX) and not name.startswith(self.prefix):
            return self.prefix + name[len(NAME_PREFIX) :]
        return name

    def scalar(self, value: float) -> ir.Value:
        """A scalar float constant, one initializer per value however often it is used."""
        if value not in self._scalars:
            self._scalars[value] = self.const(f"anan/scalar/{value!r}", value)
        return self._scalars[value]

    def named(
        self, op_type: str, inputs: Sequence[ir.Value | None], name: str, **attrs: object
    ) -> ir.Value:
        """A node ``name`` of ``op_type`` with one output, also named ``name``."""
        name = self.name(name)
        return self.op(op_type, inputs, attrs or None, name=name, output=ir.Value(name=name))  # type: ignore[arg-type]

    def like(
        self, node: ir.Node, inputs: Sequence[ir.Value | None], name: str, **changed: object
    ) -> ir.Value:
        """A copy of ``node`` (op, domain, attributes) on ``inputs``, named ``name``; the
        ``changed`` attributes replace the node's own (and come after the others)."""
        kept = {k: a for k, a in node.attributes.items() if k not in changed}
        attributes: Mapping[str, object] = {**kept, **changed}
        name = self.name(name)
        return self.op(
            node.op_type,
            inputs,
            attributes,  # type: ignore[arg-type]
            domain=node.domain,
            name=name,
            output=ir.Value(name=name),
        )
