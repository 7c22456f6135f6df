"""Engine: LiteRT (TensorFlow Lite) on the ``.tflite`` file onnx2tf makes of the model.

onnx2tf 2.x needs Python >= 3.12 and pins older onnx and onnxruntime than anan-onnx, so it
runs in an environment of its own (``tools/litert_venv.sh`` makes ``.venv312`` in the
checkout; ``ANAN_LITERT_PYTHON`` names another Python): :mod:`._litert_child` converts and
runs there, one child process per call, files in a private temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.install_hint import source_checkout
from anan_onnx.runtime.engines import EngineUnavailable, rows

__all__ = ["LiteRT", "PYTHON_VARIABLE", "litert_python"]

PYTHON_VARIABLE = "ANAN_LITERT_PYTHON"
CHILD = Path(__file__).with_name("_litert_child.py")
SETUP = "create it with tools/litert_venv.sh (a source checkout's .venv312)"


def litert_python() -> Path:
    """The Python with onnx2tf and ai-edge-litert: ``$ANAN_LITERT_PYTHON``, else the
    checkout's ``.venv312``.

    Raises:
        EngineUnavailable: neither exists, with the command that creates it.
    """
    named = os.environ.get(PYTHON_VARIABLE)
    root = source_checkout()
    path = Path(named) if named else (root / ".venv312" / "bin" / "python" if root else None)
    if path is None or not path.is_file():
        where = f"{PYTHON_VARIABLE}={named} does not exist" if named else "no .venv312 found"
        raise EngineUnavailable(
            f"the litert engine runs onnx2tf and LiteRT in a Python 3.12 environment of its "
            f"own ({where}): {SETUP}, or set {PYTHON_VARIABLE} to its python"
        )
    return path


class LiteRT:
    """onnx2tf's float32 ``.tflite`` on LiteRT's interpreter (XNNPACK, float32); each model
    is converted once."""

    name = "litert"
    precision = "f32"

    def __init__(self) -> None:
        self.python = litert_python()
        self._folder = tempfile.TemporaryDirectory(prefix="anan_litert_")
        self._converted: dict[Path, Path] = {}

    def tflite(self, model: str | Path, target: str | Path) -> Path:
        """Converts the ONNX ``model`` into the ``.tflite`` file ``target``."""
        self._child("convert", Path(model).resolve(), target, what=f"onnx2tf on {model}")
        return Path(target)

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        key = Path(model).resolve()
        if key.suffix == ".tflite":  # already converted (export --target litert)
            self._converted[key] = key
        if key not in self._converted:
            target = Path(self._folder.name) / f"{len(self._converted)}.tflite"
            self._converted[key] = self.tflite(key, target)
        folder = Path(self._folder.name)
        np.save(folder / "batch.npy", np.ascontiguousarray(batch))
        self._child("run", self._converted[key], folder / "batch.npy", folder / "out.npy",
                    what=f"LiteRT on {key.name}")  # fmt: skip
        return rows(np.load(folder / "out.npy"), batch)

    def close(self) -> None:
        self._folder.cleanup()

    def _child(self, *arguments: object, what: str) -> None:
        proc = subprocess.run(
            [str(self.python), str(CHILD), *map(str, arguments)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise AnanError(f"{what} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
