"""Shared by the compress tests: parameters that make the astrocytes act, image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from anan_onnx.params import AnanParams

#: excites some kernels and inhibits others on random images, so the astrocytes act
PARAMS = AnanParams(k=4, mu=2, a=1.5, b=0.5)


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths
