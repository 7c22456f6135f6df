"""The README's code blocks run as written.

Every ```python and ```sh block of README.md is either run here, in a scratch copy of the
checkout's layout (``models/`` beside an ``out/`` folder, the data sets in ``../shared/data``),
or listed in ``NOT_RUN`` with the reason. A new block that is neither fails the test, so the
README cannot gain an untested command by accident. ``.venv/bin/...`` in a block means this
test's interpreter (the repository's venv).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from process_helpers import tail

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

#: blocks not run here, each recognised by a line it contains, with the reason
NOT_RUN = {
    "python3 -m venv .venv": "creates a venv and installs ~2 GB from the package index "
    "(the Quick start; .ci/run performs the same install, README gives the measured time)",
    "pip install -e .": "installs packages from the package index (network)",
}


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", README.read_text(), re.S | re.M)


def reason_not_run(block: str) -> str | None:
    return next((why for key, why in NOT_RUN.items() if key in block), None)


def in_venv(block: str) -> str:
    """The block with ``.venv/bin/`` commands pointing at this interpreter."""
    python = f'"{sys.executable}"'
    commands = {"anan-onnx": f"{python} -m anan_onnx", "python": python}
    return re.sub(r"\.venv/bin/(anan-onnx|python)\b", lambda m: commands[m[1]], block)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory, anan_model: Path) -> Path:
    """A scratch checkout: models/, out/catsdogs.anan.onnx (with its base) and, beside it,
    shared/data/cats_dogs (the real set when it sits beside the repository, else a few
    generated images under the names the README uses)."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "checkout"
    (work / "out").mkdir(parents=True)
    (work / "models").symlink_to(REPO / "models")
    shutil.copy(anan_model, work / "out" / "catsdogs.anan.onnx")
    base = anan_model.with_name("model.base.onnx")  # the name its metadata records
    shutil.copy(base, work / "out" / base.name)
    real = REPO.parent / "shared" / "data"
    if (real / "cats_dogs" / "test").is_dir():
        (root / "shared").mkdir()
        (root / "shared" / "data").symlink_to(real)
    else:
        rng = np.random.default_rng(0)
        names = ("test/cats/cat_1.jpg", "test/cats/cat_106.jpg", "test/dogs/dog_114.jpg")
        names += tuple(f"train/{c}s/{c}_{i}.jpg" for c in ("cat", "dog") for i in range(4))
        for name in names:  # the test images the README names, and a few for calibration
            path = root / "shared" / "data" / "cats_dogs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (224, 224, 3), np.uint8)).save(path)
    return work


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_every_block_is_run_or_has_a_reason():
    python, shell = blocks("python"), blocks("sh")
    assert python and shell
    assert len(python) == 1  # test_python_block runs it
    run_here = [b for b in shell if reason_not_run(b) is None]
    assert run_here == [b for b in shell if "anan-onnx inspect" in b]  # test_shell_blocks
    assert all(any(key in b for b in shell) for key in NOT_RUN)  # no stale entries


@pytest.mark.keras
def test_python_block(checkout: Path):
    (block,) = blocks("python")
    proc = run([sys.executable, "-c", block], checkout)
    assert proc.returncode == 0, tail(proc)
    assert "AnanParams(k=4, mu=2, a=1.05, b=0.3" in proc.stdout
    assert '["cats", "dogs"]' in proc.stdout  # read_metadata on a path; classes recorded
    assert any(line.startswith("PASS: 64/64") for line in proc.stdout.splitlines())
    assert (checkout / "out" / "m.anan.onnx").is_file()


@pytest.mark.keras
def test_shell_blocks(checkout: Path):
    for block in blocks("sh"):
        if reason_not_run(block) is not None:
            continue
        proc = run(["bash", "-euo", "pipefail", "-c", in_venv(block)], checkout)
        assert proc.returncode == 0, f"{block}\n{tail(proc)}"
        assert "anan model" in proc.stdout and '"predictions"' in proc.stdout
        assert "PASS" in proc.stdout
