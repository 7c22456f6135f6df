"""The C++ example (examples/cpp, ``anan_infer``) against Python onnxruntime.

The first run fetches the onnxruntime C++ SDK (tools/get_onnxruntime_cpp.sh, into
third_party/onnxruntime) and builds the example with CMake into build/anan_infer; later
runs only re-check the build. Without cmake, a C++ compiler or the SDK the tests fail
(they do not skip): the example is part of what this project ships.

Two kinds of model are used: the bundled Keras CNN converted by ``anan-onnx convert`` (the
real thing), and small ONNX CNNs built here with onnx.helper (NHWC and NCHW inputs), which
show that the program runs any single-input float32 CNN.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fixtures.cpp_example import toy_cnn

from conformance_cases import non_finite_model

pytestmark = pytest.mark.cpp  # needs cmake and a C++ compiler

BATCH = 3
TOLERANCE = 1e-6
MODELS = ("anan", "toy_nhwc", "toy_nchw")


# --- running the program (the anan_infer fixture that builds it: tests/examples/conftest.py) ---


def _infer(binary: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _rows(stdout: str) -> np.ndarray:
    return np.array([[float(v) for v in line.split()] for line in stdout.splitlines()])


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error message; asserts a non-zero exit and a single stderr line."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("anan_infer: error: ")
    assert proc.stdout == ""
    return lines[0]


# --- models --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("toy")
    return {
        "toy_nhwc": toy_cnn(folder / "toy_nhwc.onnx", "NHWC"),
        "toy_nchw": toy_cnn(folder / "toy_nchw.onnx", "NCHW"),
    }


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest) -> Path:
    if request.param == "anan":
        return request.getfixturevalue("anan_model")
    return request.getfixturevalue("toy_models")[request.param]


@pytest.fixture
def toy(toy_models: dict[str, Path]) -> Path:
    return toy_models["toy_nhwc"]


# --- inputs --------------------------------------------------------------------------------


def _metadata(path: Path) -> dict[str, str]:
    props = onnx.load(str(path), load_external_data=False).metadata_props
    return {p.key: p.value for p in props if p.key.startswith("anan.")}


def _pixels(path: Path, n: int = BATCH, seed: int = 0) -> np.ndarray:
    """Random uint8 images (N, H, W, C) of the size the model's metadata records."""
    md = _metadata(path)
    shape = (n, int(md["anan.height"]), int(md["anan.width"]), int(md["anan.channels"]))
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _preprocess(pixels: np.ndarray, path: Path) -> np.ndarray:
    """pixel * scale + offset in float32, in the model's layout (as anan-onnx does)."""
    md = _metadata(path)
    x = pixels.astype(np.float32) * np.float32(float(md["anan.scale"]))
    x += np.float32(float(md["anan.offset"]))
    if md["anan.layout"].upper() == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def _python_probs(path: Path, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    first_input = session.get_inputs()[0].name
    return session.run(None, {first_input: batch})[0].reshape(len(batch), -1)


def _write_ppm(path: Path, pixels: np.ndarray) -> Path:
    height, width, channels = pixels.shape
    magic = b"P6" if channels == 3 else b"P5"
    path.write_bytes(magic + b"\n# test image\n%d %d\n255\n" % (width, height) + pixels.tobytes())
    return path


def _write_ppms(folder: Path, pixels: np.ndarray) -> list[Path]:
    return [_write_ppm(folder / f"image{i}.ppm", image) for i, image in enumerate(pixels)]


# --- tests ---------------------------------------------------------------------------------


def test_help(anan_infer: Path) -> None:
    proc = _infer(anan_infer, "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: anan_infer")


def test_npy_batch_matches_python(anan_infer: Path, model: Path, tmp_path: Path) -> None:
    batch = _preprocess(_pixels(model), model)
    np.save(tmp_path / "batch.npy", batch)
    proc = _infer(anan_infer, model, tmp_path / "batch.npy")
    assert proc.returncode == 0, proc.stderr
    cpp = _rows(proc.stdout)
    python = _python_probs(model, batch)
    assert cpp.shape == python.shape
    assert np.max(np.abs(cpp - python)) <= TOLERANCE


def test_ppm_images_match_python(anan_infer: Path, model: Path, tmp_path: Path) -> None:
    pixels = _pixels(model, seed=1)
    proc = _infer(anan_infer, "--quiet", model, *_write_ppms(tmp_path, pixels))
    assert proc.returncode == 0, proc.stderr
    python = _python_probs(model, _preprocess(pixels, model))
    assert np.max(np.abs(_rows(proc.stdout) - python)) <= TOLERANCE


def test_predictions_match_anan_session(anan_infer: Path, anan_model: Path, tmp_path: Path) -> None:
    import anan_onnx

    batch = _preprocess(_pixels(anan_model, n=8, seed=2), anan_model)
    np.save(tmp_path / "batch.npy", batch)
    proc = _infer(anan_infer, anan_model, tmp_path / "batch.npy")
    assert proc.returncode == 0, proc.stderr
    cpp = _rows(proc.stdout)
    python = np.asarray(anan_onnx.Session(anan_model).predict(batch)).reshape(cpp.shape)
    assert np.array_equal(cpp > 0.5, python > 0.5)
    assert np.max(np.abs(cpp - python)) <= TOLERANCE


def test_json_output_parses(anan_infer: Path, toy: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "batch.npy", _preprocess(_pixels(toy), toy))
    as_json = _infer(anan_infer, "--json", toy, tmp_path / "batch.npy")
    as_text = _infer(anan_infer, toy, tmp_path / "batch.npy")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert isinstance(rows, list) and len(rows) == BATCH
    assert all(isinstance(row, list) and len(row) == 2 for row in rows)
    assert np.array_equal(np.array(rows), _rows(as_text.stdout))


def test_metadata_is_printed(anan_infer: Path, model: Path) -> None:
    expected = [f"{key} = {value}" for key, value in sorted(_metadata(model).items())]
    assert any(line.startswith("anan.k = ") for line in expected)
    proc = _infer(anan_infer, "--metadata", model)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected


def test_default_run_keeps_metadata_off_stdout(anan_infer: Path, toy: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "batch.npy", _preprocess(_pixels(toy), toy))
    proc = _infer(anan_infer, toy, tmp_path / "batch.npy")
    assert proc.returncode == 0, proc.stderr
    assert "anan.k = 4" in proc.stderr.splitlines()
    assert "producer.note" not in proc.stderr
    assert _rows(proc.stdout).shape == (BATCH, 2)


def test_missing_model_file(anan_infer: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "batch.npy", np.zeros((1, 12, 12, 3), np.float32))
    message = _one_line_error(_infer(anan_infer, tmp_path / "nope.onnx", tmp_path / "batch.npy"))
    assert "not found" in message and "nope.onnx" in message


def test_missing_input_file(anan_infer: Path, toy: Path, tmp_path: Path) -> None:
    message = _one_line_error(_infer(anan_infer, toy, tmp_path / "nope.npy"))
    assert "not found" in message and "nope.npy" in message


def test_wrong_image_size(anan_infer: Path, toy: Path, tmp_path: Path) -> None:
    image = _write_ppm(tmp_path / "small.ppm", np.zeros((8, 12, 3), np.uint8))
    message = _one_line_error(_infer(anan_infer, toy, image))
    assert "small.ppm" in message and "8x12x3" in message


@pytest.mark.parametrize(
    ("batch", "needles"),
    [
        pytest.param(
            np.zeros((2, 10, 12, 3), np.float32),
            ("[2, 10, 12, 3]", "[?, 12, 12, 3]"),
            id="wrong-input-shape",
        ),
        pytest.param(np.zeros((1, 12, 12, 3), np.float64), ("'<f8'", "float32"), id="float64"),
        pytest.param(
            np.asfortranarray(np.zeros((2, 12, 12, 3), np.float32)), ("Fortran",), id="fortran"
        ),
    ],
)
def test_bad_npy_batch(
    anan_infer: Path, toy: Path, tmp_path: Path, batch: np.ndarray, needles: tuple[str, ...]
) -> None:
    np.save(tmp_path / "batch.npy", batch)
    message = _one_line_error(_infer(anan_infer, toy, tmp_path / "batch.npy"))
    assert all(needle in message for needle in needles), message


def test_cuda_provider(anan_infer: Path, toy: Path, tmp_path: Path) -> None:
    batch = _preprocess(_pixels(toy), toy)
    np.save(tmp_path / "batch.npy", batch)
    proc = _infer(anan_infer, "--provider", "cuda", toy, tmp_path / "batch.npy")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert proc.returncode == 0, proc.stderr
        assert np.max(np.abs(_rows(proc.stdout) - _python_probs(toy, batch))) <= 1e-4
    else:
        assert "no CUDA execution provider" in _one_line_error(proc)


# --- preprocessing recorded per channel, or not at all -----------------------------------------


def _with_metadata(source: Path, path: Path, changes: dict[str, str | None]) -> Path:
    """A copy of ``source`` whose anan.* keys are changed (None: removed)."""
    model = onnx.load(str(source))
    kept = [
        (p.key, p.value) for p in model.metadata_props if p.key.removeprefix("anan.") not in changes
    ]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    for key, value in changes.items():
        if value is not None:
            model.metadata_props.add(key=f"anan.{key}", value=value)
    onnx.save(model, path)
    return path


def test_per_channel_bgr_images(anan_infer: Path, toy: Path, tmp_path: Path) -> None:
    """x[c] = pixel[c'] * scale[c] + offset[c] with c' the BGR order, from a PPM file."""
    scale, offset = (0.0171, 0.0175, 0.0174), (-2.1, -2.0, -1.8)
    model = _with_metadata(
        toy,
        tmp_path / "bgr.onnx",
        {"scale": "0.0171, 0.0175,0.0174", "offset": "-2.1,-2.0,-1.8", "channel_order": "BGR"},
    )
    pixels = _pixels(model, seed=3)
    proc = _infer(anan_infer, "--quiet", model, *_write_ppms(tmp_path, pixels))
    assert proc.returncode == 0, proc.stderr
    x = pixels[..., ::-1].astype(np.float32) * np.asarray(scale, np.float32)
    x += np.asarray(offset, np.float32)
    expected = _python_probs(model, np.ascontiguousarray(x))
    assert np.max(np.abs(_rows(proc.stdout) - expected)) <= TOLERANCE
    rgb = pixels.astype(np.float32) * np.asarray(scale, np.float32) + np.asarray(offset, np.float32)
    assert np.max(np.abs(_python_probs(model, rgb) - expected)) > 100 * TOLERANCE  # order matters


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        pytest.param({"scale": "0.1,0.2"}, ("2 values", "3 channels"), id="two-scales"),
        pytest.param({"offset": "1,nan,2"}, ("anan.offset", "finite"), id="nan-offset"),
        pytest.param({"channel_order": "GBR"}, ("channel_order", "GBR"), id="channel-order"),
        pytest.param({"resize": "nearest"}, ("anan.resize", "nearest", "bilinear"), id="resize"),
        pytest.param({"aspect": "crop"}, ("anan.aspect", "crop", "stretch"), id="aspect"),
        pytest.param({"scale": None}, ("no anan.scale", "--scale"), id="no-scale"),
    ],
)
def test_unusable_preprocessing_is_refused(
    anan_infer: Path, toy: Path, tmp_path: Path, changes: dict[str, str | None], needles: tuple
) -> None:
    model = _with_metadata(toy, tmp_path / "changed.onnx", changes)
    image = _write_ppm(tmp_path / "one.ppm", _pixels(model, n=1)[0])
    message = _one_line_error(_infer(anan_infer, model, image))
    assert all(needle in message for needle in needles), message


def test_scaling_given_on_the_command_line(anan_infer: Path, toy: Path, tmp_path: Path) -> None:
    """A model without recorded scaling runs only with --scale (no guessed 1.0 or 1/255)."""
    model = _with_metadata(toy, tmp_path / "bare.onnx", {"scale": None, "offset": None})
    pixels = _pixels(model, n=2, seed=4)
    images = _write_ppms(tmp_path, pixels)
    proc = _infer(anan_infer, "-q", "--scale", "0.5,0.25,0.125", "--offset=-1", model, *images)
    assert proc.returncode == 0, proc.stderr
    x = pixels.astype(np.float32) * np.asarray((0.5, 0.25, 0.125), np.float32) - np.float32(1)
    assert np.max(np.abs(_rows(proc.stdout) - _python_probs(model, x))) <= TOLERANCE


def test_non_finite_output_is_an_error(anan_infer: Path, tmp_path: Path) -> None:
    """A model whose output is NaN: exit != 0 and one line, never 'nan' as a result."""
    non_finite_model(tmp_path / "nan.onnx", 4)
    np.save(tmp_path / "zeros.npy", np.zeros((2, 3, 4, 4), np.float32))
    for flags in ((), ("--json",)):
        proc = _infer(anan_infer, *flags, tmp_path / "nan.onnx", tmp_path / "zeros.npy")
        message = _one_line_error(proc)
        assert "nan" in message and "not a finite number" in message
