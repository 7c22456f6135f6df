"""Fixtures of the export tests: ANAN models converted by the CLI, each with its base model
beside it (the export's modulation check and the literal reference need it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from anan_onnx.testing import VARIANTS, build_cnn

from process_helpers import tail

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``python -m anan_onnx ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "anan_onnx", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def cli():
    """:func:`run_cli`, for the test modules."""
    return run_cli


@pytest.fixture(scope="session")
def generated_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated NCHW CNN (anan_onnx.testing, 3x3 Conv, MaxPool, softmax) converted with
    default parameters by ``anan-onnx convert``."""
    folder = tmp_path_factory.mktemp("generated")
    raw = folder / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"], pool="max"), raw)
    out = folder / "cnn.anan.onnx"
    proc = run_cli("convert", str(raw), "-o", str(out))
    if proc.returncode != 0 or not out.is_file():
        pytest.fail(f"anan-onnx convert {raw.name} failed:\n{tail(proc)}")
    return out


@pytest.fixture(scope="session", params=["bundled", "generated"])
def source_model(request: pytest.FixtureRequest) -> Path:
    """The bundled Keras CNN's ANAN model (tests/conftest.py) and the generated one."""
    name = "anan_model" if request.param == "bundled" else "generated_model"
    return request.getfixturevalue(name)
