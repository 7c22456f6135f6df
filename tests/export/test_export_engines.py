"""export --target openvino|litert: the engine's artefact, checked exact on that engine
before anything is written (anan_onnx.export.engine_files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anan_onnx.export import export_model
from anan_onnx.runtime.engines import open_engine
from anan_onnx.testing import VARIANTS, random_batch


def _inputs() -> np.ndarray:
    return random_batch(VARIANTS["plain"], 4, seed=4)


@pytest.mark.integration
def test_openvino_ir_is_exact_in_float32(generated_model: Path, tmp_path) -> None:
    """The IR (float32 weights, the f32 hint recorded) is exact compiled with
    INFERENCE_PRECISION_HINT=f32, which the export names; with OpenVINO's defaults it is
    not exact where the default is bf16 (docs/engines.md)."""
    result = export_model(generated_model, "openvino", tmp_path / "out")
    names = sorted(p.name for p in result.files)
    assert names == ["cnn.anan.bin", "cnn.anan.json", "cnn.anan.onnx", "cnn.anan.xml"]
    assert [r.file for r in result.exactness] == ["cnn.anan.onnx", "cnn.anan.xml"]
    assert "INFERENCE_PRECISION_HINT=f32" in result.exactness[1].line()
    xml = tmp_path / "out" / "cnn.anan.xml"
    x = _inputs()
    expected = open_engine("ort").run(generated_model, x)
    assert np.abs(open_engine("openvino", precision="f32").run(xml, x) - expected).max() <= 1e-5
    default = open_engine("openvino")
    off = np.abs(default.run(xml, x) - expected).max()
    assert (off > 1e-5) == (default.precision == "bf16")
    assert "INFERENCE_PRECISION_HINT" in xml.read_text()


@pytest.mark.litert
def test_litert_tflite_is_exact(generated_model: Path, tmp_path) -> None:
    result = export_model(generated_model, "litert", tmp_path / "out")
    assert sorted(p.name for p in result.files) == [
        "cnn.anan.json", "cnn.anan.onnx", "cnn.anan.tflite"
    ]  # fmt: skip
    assert result.batch == 1
    tflite = tmp_path / "out" / "cnn.anan.tflite"
    x = _inputs()
    expected = open_engine("ort").run(generated_model, x)  # dynamic batch; the export's is 1
    assert np.abs(open_engine("litert").run(tflite, x) - expected).max() <= 1e-5


def test_litert_target_without_its_environment_writes_nothing(
    generated_model: Path, tmp_path, monkeypatch
) -> None:
    from anan_onnx.errors import AnanError

    monkeypatch.setenv("ANAN_LITERT_PYTHON", str(tmp_path / "none" / "python"))
    with pytest.raises(AnanError, match="tools/litert_venv.sh"):
        export_model(generated_model, "litert", tmp_path / "out")
    assert not (tmp_path / "out").exists()
