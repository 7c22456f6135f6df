"""export --raw-input: a model that takes decoded uint8 pixels (NHWC, RGB) and carries its
recorded preprocessing (BGR reorder, per-channel scale and offset, layout) as standard
ops, exact against the float model (anan_onnx.export.raw_input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from anan_onnx import AnanParams, convert_model
from anan_onnx.errors import AnanError
from anan_onnx.export import export_model
from anan_onnx.metadata import read_metadata
from anan_onnx.runtime.engines import open_engine
from anan_onnx.testing import VARIANTS, build_cnn

from conformance_cases import make_image_case


@pytest.fixture(scope="module")
def image_case(tmp_path_factory: pytest.TempPathFactory):
    """The per-channel, BGR, NCHW model of the conformance matrix with RGB pixels."""
    return make_image_case(tmp_path_factory.mktemp("raw"))


@pytest.mark.parametrize("engine", ["ort", "reference"])
def test_pixels_in_same_outputs_out(image_case, tmp_path: Path, engine: str) -> None:
    """RGB pixels fed to the raw model give the float model's outputs on the preprocessed
    tensor (bit-identical on onnxruntime), the literal loop's within 1e-5, and differ from
    the base model's where the loop does."""
    result = export_model(image_case.path, "web", tmp_path / "out", raw_input=True)
    exported = tmp_path / "out" / image_case.path.name
    model = onnx.load(exported)
    (pixels_input,) = model.graph.input
    assert pixels_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value for d in pixels_input.type.tensor_type.shape.dim[1:]]
    assert dims == list(image_case.pixels.shape[1:])
    recorded = read_metadata(model)
    assert (recorded["raw_input"], recorded["layout"], recorded["channel_order"]) == (
        "uint8", "NHWC", "RGB"
    )  # fmt: skip
    out = open_engine(engine).run(exported, image_case.pixels)
    if engine == "ort":
        assert np.array_equal(out, image_case.expected.astype(np.float32))
    assert np.abs(out - image_case.reference).max() <= 1e-5
    assert np.abs(out - image_case.base).max(axis=1).min() > 1e-4
    assert result.exactness[0].max_diff <= 1e-5


def test_raw_input_needs_the_recorded_preprocessing(tmp_path: Path) -> None:
    """A model without a recorded input size has nothing to carry: refused, nothing written."""
    conversion = convert_model(build_cnn(VARIANTS["plain"], seed=3), AnanParams())
    source = tmp_path / "bare.anan.onnx"
    onnx.save(conversion.anan, source)
    with pytest.raises(AnanError, match="recorded preprocessing"):
        export_model(source, "web", tmp_path / "out", raw_input=True)
    assert not (tmp_path / "out").exists()


def test_cli_raw_input(cli, generated_model: Path, tmp_path: Path) -> None:
    proc = cli("export", str(generated_model), "--target", "ort", "--raw-input",
               "-o", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(tmp_path / "out" / generated_model.name)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert "max |diff|" in proc.stdout and (tmp_path / "out" / "cnn.anan.ort").is_file()


@pytest.fixture(scope="module")
def raw_model(generated_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated ANAN model exported with --raw-input."""
    out = tmp_path_factory.mktemp("raw_cli") / "out"
    export_model(generated_model, "ort", out, raw_input=True)
    return out / generated_model.name


def test_predict_feeds_a_raw_model_pixels(cli, generated_model: Path, raw_model: Path,
                                          tmp_path: Path) -> None:  # fmt: skip
    """predict runs a raw model on image files and on uint8 .npy pixels (unscaled: the
    graph scales), giving the float model's outputs; a float .npy is refused in one line."""
    from PIL import Image

    from anan_onnx.runtime.image_files import to_model_input
    from anan_onnx.runtime.session import Session

    spec = Session(generated_model).input_spec()
    assert spec is not None
    pixels = np.random.default_rng(0).integers(
        0, 256, (2, spec.height, spec.width, spec.channels), dtype=np.uint8
    )
    expected = Session(generated_model).predict(to_model_input(pixels, spec))
    assert np.allclose(Session(raw_model).predict(pixels), expected, atol=1e-6)
    np.save(tmp_path / "pixels.npy", pixels)
    np.save(tmp_path / "floats.npy", pixels.astype(np.float32) / 255)
    Image.fromarray(pixels[0]).save(tmp_path / "a.png")
    for name in ("pixels.npy", "a.png"):
        proc = cli("predict", str(raw_model), str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
    first = proc.stdout.split("\t")[1].split()
    assert np.allclose([float(v) for v in first], expected[0], atol=1e-5)
    proc = cli("predict", str(raw_model), str(tmp_path / "floats.npy"))
    assert proc.returncode != 0 and "uint8" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_verify_refuses_a_raw_model(cli, raw_model: Path) -> None:
    proc = cli("verify", str(raw_model), "-n", "2")
    assert proc.returncode != 0 and "before export --raw-input" in proc.stderr
    assert "Traceback" not in proc.stderr
