"""The bundled Cats&Dogs model, once: INT8 within the size goal and exact on real images."""

from __future__ import annotations

from pathlib import Path

import pytest

from anan_onnx.compress import compress_file
from anan_onnx.reference.compressed import verify_compressed_models
from anan_onnx.runtime.image_files import load_images
from anan_onnx.runtime.session import Session

REPO = Path(__file__).resolve().parents[2]
#: the shared data beside the checkout (../shared, or ../../shared for a worktree)
DATA = next(
    (
        d
        for d in (REPO.parent / "shared/data/cats_dogs", REPO.parents[1] / "shared/data/cats_dogs")
        if d.is_dir()
    ),
    REPO.parent / "shared/data/cats_dogs",
)


@pytest.mark.skipif(not DATA.is_dir(), reason="the shared Cats&Dogs images are not here")
def test_bundled_int8_documented_workflow(anan_model: Path) -> None:
    """docs/compression.md's workflow as issue 23 ran it: calibrate on train/ (100 images),
    verify on every test image. It used to fail on one 8-bit output step (0.00392 > 1e-3)."""
    result = compress_file(anan_model, "int8", calibration=[DATA / "train"])
    assert result.output.stat().st_size <= 0.30 * anan_model.stat().st_size
    assert result.agreement is not None and result.agreement.meets(0.99)
    files = sorted((DATA / "test").rglob("*.jpg"))
    x, _, _ = load_images(files, Session(result.output).input_spec(), progress=False)
    report = verify_compressed_models(result.anan, result.base, x, fp32=anan_model)
    assert report.passed, report.summary()
    assert report.handover_diff <= 1e-5 and report.outputs.compared == len(files)
    assert report.tail.kind == "int8" and report.tail.step > 1e-3  # an 8-bit output step
