"""The Node.js example refuses what is not a regular file of bounded size, at once.

A FIFO as model or batch used to hang (the program waited for a writer), ``/dev/zero``
grew to 5 GB and then crashed: ``checkFile`` refused only folders. Now both files must be
regular files of at most 2 GiB (anan_infer.mjs: MAX_FILE_BYTES), refused in one stderr line
with exit status 2 within seconds, as the Python package and the C++ example do. A model
whose output is NaN is an error too, never printed as a result. Small models built here
with onnx.helper: no TensorFlow needed.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from anan_onnx.conformance import node as conformance_node

from conformance_cases import non_finite_model

pytestmark = pytest.mark.node

#: generous for a loaded 2-core machine; a hang is what these tests catch
SECONDS = 60


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    np.save(tmp_path / "batch.npy", np.ones((2, 3, 4, 4), np.float32))
    model = non_finite_model(tmp_path / "tiny.onnx", 4, divide_by=2.0)  # finite: 1 / 2
    return {"model": model, "batch": tmp_path / "batch.npy"}


def _run(node: str, *args: object) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = conformance_node.infer(node, *args, timeout=SECONDS)
    return proc, time.monotonic() - start


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("anan_infer: error: ")
    return lines[0]


def test_regular_files_run(node: str, files: dict[str, Path]) -> None:
    proc, _ = _run(node, "-q", files["model"], files["batch"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0.5"] * 6


@pytest.mark.parametrize("role", ["model", "batch"])
def test_fifo_is_refused_without_blocking(
    node: str, files: dict[str, Path], tmp_path: Path, role: str
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer ever opens it: reading it would block for ever
    args = {**files, role: fifo}
    message = _one_line_error(_run(node, args["model"], args["batch"])[0])
    assert "FIFO" in message and str(fifo) in message


@pytest.mark.parametrize("role", ["model", "batch"])
def test_device_is_refused_before_reading(node: str, files: dict[str, Path], role: str) -> None:
    args = {**files, role: Path("/dev/zero")}
    proc, seconds = _run(node, args["model"], args["batch"])
    assert "/dev/zero is a character device" in _one_line_error(proc)
    assert seconds < SECONDS / 2


@pytest.mark.parametrize("role", ["model", "batch"])
def test_folder_is_refused(node: str, files: dict[str, Path], tmp_path: Path, role: str) -> None:
    args = {**files, role: tmp_path}
    assert "is a folder" in _one_line_error(_run(node, args["model"], args["batch"])[0])


def test_batch_beyond_the_size_limit(node: str, files: dict[str, Path], tmp_path: Path) -> None:
    """A 3 GB sparse .npy is refused from its size, nothing read (it takes no disk)."""
    big = tmp_path / "big.npy"
    with open(big, "wb") as f:
        f.truncate(3 * 10**9)
    message = _one_line_error(_run(node, files["model"], big)[0])
    assert "3000000000 bytes" in message and "2 GiB" in message


@pytest.mark.parametrize("flags", [(), ("--json",)])
def test_nan_output_is_an_error(node: str, tmp_path: Path, flags: tuple[str, ...]) -> None:
    model = non_finite_model(tmp_path / "nan.onnx", 4)
    np.save(tmp_path / "zeros.npy", np.zeros((2, 3, 4, 4), np.float32))
    message = _one_line_error(_run(node, *flags, model, tmp_path / "zeros.npy")[0])
    assert "nan" in message and "not a finite number" in message
