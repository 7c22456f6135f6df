"""A small converted CNN, its calibration images, and compressed versions of it."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from compress_helpers import PARAMS, make_images

from anan_onnx.compress import compress_file
from anan_onnx.convert.pipeline import convert_file
from anan_onnx.testing import build_base_cnn


@pytest.fixture(scope="package")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted 32x32 NHWC CNN (3 conv blocks) and 24 calibration PNGs in ``data/``."""
    root = tmp_path_factory.mktemp("compress")
    base = root / "cnn.onnx"
    onnx.save(build_base_cnn(32, 3, (8, 16), dense=16, seed=3), base)
    convert_file(base, root / "cnn.anan.onnx", PARAMS, layout="NHWC")
    make_images(root / "data", 24, 32)
    return root / "cnn.anan.onnx"


@pytest.fixture(scope="package")
def int8_model(small: Path):
    return compress_file(small, "int8", calibration=[small.parent / "data"], calibration_size=16)


@pytest.fixture(scope="package")
def fp16_model(small: Path):
    return compress_file(small, "fp16")
