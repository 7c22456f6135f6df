"""Fixtures shared by the example tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from anan_onnx.conformance import cpp
from anan_onnx.conformance import node as conformance_node
from anan_onnx.conformance._process import RuntimeUnavailable


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with examples/node's dependencies installed (npm ci on first
    use); fails (does not skip) with the install command when Node.js or npm is missing."""
    try:
        return conformance_node.install()
    except RuntimeUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def anan_infer() -> Path:
    """Path of the built C++ example ``anan_infer`` (anan_onnx.conformance.cpp builds it,
    as for the conformance matrix); fails (does not skip) when it cannot be built."""
    try:
        return cpp.build()
    except RuntimeUnavailable as exc:
        pytest.fail(str(exc))
