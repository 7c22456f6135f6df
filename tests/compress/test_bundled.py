"""The bundled Cats&Dogs model, once: INT8 within the size goal and exact on real images."""

from __future__ import annotations

from pathlib import Path

import pytest

from anan_onnx.compress import compress_file
from anan_onnx.reference.compressed import fp32_agreement, verify_compressed_models
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
def test_bundled_int8(anan_model: Path) -> None:
    result = compress_file(anan_model, "int8", calibration=[DATA / "train"], calibration_size=32)
    assert result.output.stat().st_size <= 0.30 * anan_model.stat().st_size
    files = sorted((DATA / "test").rglob("*.jpg"))[::20][:24]
    session = Session(result.output)
    x, _, _ = load_images(files, session.input_spec())
    report = verify_compressed_models(result.anan, result.base, x)
    assert report.passed, report.summary()
    assert report.handover_diff <= 1e-5
    agree = fp32_agreement(session, Session(anan_model), x)
    assert agree.agreement >= 0.9, agree.summary()
