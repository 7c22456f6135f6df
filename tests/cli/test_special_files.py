"""Anything that is not a regular file is refused at once, with the right reason.

A FIFO opened for reading blocks until a writer comes, so before, ``predict`` given a FIFO
as an image or ``.npy`` hung forever, and a FIFO as a model was "empty". These run the CLI
in a subprocess with a timeout: a hang fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from anan_onnx.cli import main
from anan_onnx.errors import AnanError
from anan_onnx.files import check_regular, open_regular
from anan_onnx.testing import VARIANTS, build_cnn

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
TIMEOUT = 60  # seconds; a refusal takes about one (mostly the import of onnxruntime)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("special")
    onnx.save(build_cnn(VARIANTS["plain"], head="sigmoid", seed=4), root / "cnn.onnx")
    assert main(["convert", str(root / "cnn.onnx"), "-o", str(root / "cnn.anan.onnx")]) == 0
    Image.fromarray(np.zeros((11, 11, 3), np.uint8)).save(root / "ok.png")
    for name in ("pipe.png", "pipe.npy", "pipe.onnx", "pipe.keras"):
        os.mkfifo(root / name)
    (root / "dir.onnx").mkdir()
    return root


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    try:
        return subprocess.run(
            [sys.executable, "-m", "anan_onnx.cli", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"anan-onnx {' '.join(args)} hung for {TIMEOUT} s on a special file")


CASES = [
    (("predict", "cnn.anan.onnx", "pipe.png"), "image pipe.png is a FIFO (named pipe)"),
    (("predict", "cnn.anan.onnx", "ok.png", "pipe.npy"), "array pipe.npy is a FIFO"),
    (("predict", "pipe.onnx", "ok.png"), "model pipe.onnx is a FIFO (named pipe)"),
    (("inspect", "pipe.onnx"), "model pipe.onnx is a FIFO (named pipe)"),
    (("convert", "pipe.onnx", "-o", "out.anan.onnx"), "model pipe.onnx is a FIFO"),
    (("convert", "pipe.keras", "-o", "out.anan.onnx"), "model pipe.keras is a FIFO"),
    (("verify", "cnn.anan.onnx", "--inputs", "pipe.png"), "image pipe.png is a FIFO"),
    (("verify", "cnn.anan.onnx", "--inputs", "pipe.npy"), "array pipe.npy is a FIFO"),
    (("verify", "cnn.anan.onnx", "--base", "pipe.onnx"), "model pipe.onnx is a FIFO"),
    (("predict", "dir.onnx", "ok.png"), "model dir.onnx is a directory, not a regular file"),
    (("inspect", "dir.onnx"), "model dir.onnx is a directory, not a regular file"),
    (("predict", "cnn.anan.onnx", "/dev/null"), "is a character device"),
]


@pytest.mark.parametrize("args,fragment", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_special_files_are_refused_at_once(folder, args, fragment):
    before = sorted(p.name for p in folder.iterdir())
    proc = _cli(folder, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]
    assert "is empty" not in lines[0] and "no such" not in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == before


def test_open_regular_never_blocks_on_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "p")
    with pytest.raises(AnanError, match=r"image .*p is a FIFO \(named pipe\), not a regular"):
        open_regular(tmp_path / "p", "image")
    with pytest.raises(AnanError, match="is a FIFO"):
        check_regular(tmp_path / "p", "model")
    (tmp_path / "gone").symlink_to(tmp_path / "missing")
    with pytest.raises(AnanError, match="is a link to a missing file"):
        check_regular(tmp_path / "gone", "model")
    (tmp_path / "f").write_bytes(b"abc")
    with open_regular(tmp_path / "f", "image") as f:
        assert f.read() == b"abc"  # blocking reads again after the non-blocking open
