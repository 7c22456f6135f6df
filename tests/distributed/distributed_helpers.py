"""Helpers of the distributed tests: a tiny classifier, a tree of images, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from PIL import Image

from anan_onnx.cli import main
from anan_onnx.metadata import write_metadata
from anan_onnx.runtime.inputs import InputSpec
from anan_onnx.testing import build_base_cnn

SIZE = 16
CLASSES = ["cat", "dog"]


def write_model(path: Path) -> Path:
    """build_base_cnn on 16x16 NHWC images, with its input spec and class names."""
    model = build_base_cnn(SIZE, 3, (4,), dense=8, seed=3)
    spec = InputSpec("NHWC", SIZE, SIZE, 3)
    write_metadata(model, {**spec.to_metadata(), "classes": json.dumps(CLASSES)})
    onnx.save(model, path)
    return path


def write_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` random PNGs in two nested folders (sorted order = the returned order)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sub = folder / ("a" if i < n // 2 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def run(capsys, *argv: object) -> tuple[int, str, str]:
    """``anan-onnx ARGV`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
