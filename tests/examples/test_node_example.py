"""The Node.js example (examples/node, ``anan_infer.mjs``) against Python onnxruntime.

The same ANAN model that ``anan-onnx convert`` writes runs from Node.js with the npm package
onnxruntime-node: a second proof, after the C++ example, that nothing Python-specific is
inside the graph. The first run installs the example's dependencies with ``npm ci`` (from
the committed package-lock.json, into examples/node/node_modules, gitignored); later runs
reuse them. Without ``node`` or ``npm`` the tests fail (they do not skip): the example is
part of what this project ships.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import anan_onnx

# the bundled model is converted from Keras; Node.js >= 18 with npm runs it
pytestmark = [pytest.mark.keras, pytest.mark.node]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "node"
SCRIPT = EXAMPLE / "anan_infer.mjs"

BATCH = 5
TOLERANCE = 1e-6


# --- installing the example (anan_onnx.conformance.node, shared with the matrix) ---------


# --- model and inputs ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def batch() -> np.ndarray:
    """A random batch of 5 preprocessed NHWC images in [0, 1)."""
    return np.random.default_rng(20).random((BATCH, 128, 128, 3), dtype=np.float32)


@pytest.fixture(scope="session")
def expected(anan_model: Path, batch: np.ndarray) -> np.ndarray:
    """Python onnxruntime's probabilities, shape (5, 1)."""
    return anan_onnx.Session(anan_model).predict(batch)


def _save(path: Path, array: np.ndarray, version: tuple[int, int] | None = None) -> Path:
    if version is None:
        np.save(path, array)
    else:
        with open(path, "wb") as handle:
            np.lib.format.write_array(handle, array, version=version)
    return path


def _infer(node: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error message; asserts exit status 2, one stderr line and an empty stdout."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("anan_infer: error: "), lines[0]
    assert proc.stdout == ""
    return lines[0]


# --- results -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, (2, 0), (3, 0)], ids=["npy_v1", "npy_v2", "npy_v3"])
def test_probabilities_match_python(
    node: str,
    anan_model: Path,
    batch: np.ndarray,
    expected: np.ndarray,
    tmp_path: Path,
    version: tuple[int, int] | None,
) -> None:
    npy = _save(tmp_path / "batch.npy", batch, version)
    proc = _infer(node, "-q", anan_model, npy)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == BATCH, proc.stdout
    tokens = [line.split() for line in lines]
    assert all(len(t) == 1 for t in tokens), proc.stdout  # one sigmoid probability per image
    # printed like C's %.9g: 9 significant digits, so each float32 reads back exactly
    assert all(t == f"{float(t):.9g}" for row in tokens for t in row), proc.stdout
    got = np.array([[float(t) for t in row] for row in tokens])
    assert got.shape == expected.shape == (BATCH, 1)
    assert np.all((got > 0) & (got < 1))
    assert np.max(np.abs(got - expected)) <= TOLERANCE, (got.ravel(), expected.ravel())


def test_json_output_parses(
    node: str, anan_model: Path, batch: np.ndarray, expected: np.ndarray, tmp_path: Path
) -> None:
    proc = _infer(node, "--json", "-q", anan_model, _save(tmp_path / "batch.npy", batch))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list) and len(rows) == BATCH
    assert all(isinstance(r, list) and len(r) == 1 for r in rows)
    assert all(isinstance(v, float) for r in rows for v in r)
    assert np.max(np.abs(np.array(rows) - expected)) <= TOLERANCE


def test_describes_model_on_stderr_only(
    node: str, anan_model: Path, batch: np.ndarray, tmp_path: Path
) -> None:
    """Without -q stderr names the interface and says that anan.* metadata is not exposed."""
    proc = _infer(node, anan_model, _save(tmp_path / "batch.npy", batch[:2]))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert "input 'input' [?, 128, 128, 3] float32" in proc.stderr
    assert "not exposed" in proc.stderr


# --- errors --------------------------------------------------------------------------------


def test_wrong_shape_npy_is_one_line_error(
    node: str, anan_model: Path, batch: np.ndarray, tmp_path: Path
) -> None:
    npy = _save(tmp_path / "wrong.npy", np.ascontiguousarray(batch[:2, :64]))
    message = _one_line_error(_infer(node, anan_model, npy))
    assert "input shape [2, 64, 128, 3] does not fit the model input 'input'" in message
    assert "dimension 1 is 64, the model needs 128" in message


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("float64", "dtype '<f8'"),
        ("fortran", "Fortran-ordered"),
        ("uint8", "dtype '|u1'"),
        ("rank3", "it has 3 dimensions, the model needs 4"),
        ("nan", "NaN at [1, 2, 3, 0]"),
        ("empty", "0 images"),
        ("truncated", "truncated or damaged"),
        ("not_npy", "is not a .npy file"),
        ("missing", "does not exist"),
    ],
)
def test_bad_npy_is_one_line_error(
    node: str, anan_model: Path, batch: np.ndarray, tmp_path: Path, case: str, fragment: str
) -> None:
    path = tmp_path / f"{case}.npy"
    small = batch[:2]
    if case == "float64":
        _save(path, small.astype(np.float64))
    elif case == "fortran":
        _save(path, np.asfortranarray(small))
    elif case == "uint8":
        _save(path, (small * 255).astype(np.uint8))
    elif case == "rank3":
        _save(path, small[0])
    elif case == "nan":
        bad = small.copy()
        bad[1, 2, 3, 0] = np.nan
        _save(path, bad)
    elif case == "empty":
        _save(path, small[:0])
    elif case == "truncated":
        _save(path, small)
        path.write_bytes(path.read_bytes()[:-4])
    elif case == "not_npy":
        path.write_bytes(b"not an array\n")
    assert fragment in _one_line_error(_infer(node, anan_model, path))


def test_usage_errors(node: str, anan_model: Path, tmp_path: Path) -> None:
    assert "expected MODEL.onnx and BATCH.npy" in _one_line_error(_infer(node, anan_model))
    assert "unknown option --nope" in _one_line_error(_infer(node, "--nope", anan_model, "x.npy"))
    not_model = tmp_path / "not_a_model.onnx"
    not_model.write_bytes(b"\x00garbage")
    npy = _save(tmp_path / "batch.npy", np.zeros((1, 128, 128, 3), np.float32))
    assert "onnxruntime cannot load the model" in _one_line_error(_infer(node, not_model, npy))
