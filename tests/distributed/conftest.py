"""Fixtures of the distributed tests: a tiny classifier and a tree of images."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed_helpers import write_images, write_model


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "m.onnx")


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    """A folder of 12 images, a damaged ``z/broken.png``, and files that are not images
    (``notes.txt``, a hidden ``.thumb.png``); returns (folder, good images, broken)."""
    folder = tmp_path / "imgs"
    good = write_images(folder, 12)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".thumb.png").write_bytes(good[0].read_bytes())
    broken = folder / "z" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    return folder, good, broken
