"""Public objects report ``anan_onnx`` as their module from import time, not from first use."""

from __future__ import annotations

import json
import subprocess
import sys

import anan_onnx


def test_public_names_report_anan_onnx_before_the_facade_is_touched():
    # A fresh interpreter: importing the defining modules directly (never through the
    # facade's __getattr__) must already give the public module name.
    code = """
import importlib, json, sys
import anan_onnx
found = {}
for name, module in anan_onnx._EXPORTS.items():
    value = getattr(importlib.import_module("anan_onnx." + module), name)
    if isinstance(value, type) or callable(value):
        found[name] = value.__module__
touched = sorted(set(vars(anan_onnx)) & set(anan_onnx._EXPORTS))
print(json.dumps({"found": found, "touched": touched}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["touched"] == []  # the facade was never asked for a name
    callables = {n for n in anan_onnx.__all__ if n not in ("__version__", "PAPER_GRID")}
    assert set(report["found"]) == callables
    assert all(module == "anan_onnx" for module in report["found"].values()), report["found"]


def test_the_facade_returns_the_defining_object_unchanged():
    from anan_onnx.errors import AnanError

    assert AnanError.__module__ == "anan_onnx"
    assert anan_onnx.AnanError is AnanError
    assert repr(AnanError("x")) == "AnanError('x')"
    assert anan_onnx.AnanError.__module__ == "anan_onnx"
