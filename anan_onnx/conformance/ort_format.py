"""Runtime: the ORT format (``.ort``), onnxruntime's flatbuffer format for minimal builds.

A minimal onnxruntime (mobile, web, embedded) reads only ``.ort`` files; the converter also
writes ``MODEL.required_operators.config``, the operator list a reduced build needs
(docs/deployment.md). Conversion runs onnxruntime's own tool in a child process
(``python -m onnxruntime.tools.convert_onnx_models_to_ort``) so that its log stays out of
ours; the ``.ort`` file is then run with onnxruntime's CPU provider.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from anan_onnx.conformance import python_cpu
from anan_onnx.conformance._process import RuntimeUnavailable, tail

__all__ = ["OrtFormat", "to_ort"]


def to_ort(model: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Converts ``model`` into ``out_dir``; returns (``.ort`` file, operators config).

    Uses the *fixed* optimisation style: the graph is optimised once, at conversion, for
    the machine's CPU (as a minimal build without runtime optimisations would run it).
    """
    model, out_dir = Path(model), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="anan_ort_") as work:
        # the tool converts every model in a folder: give it a folder with only this one
        source = Path(work) / model.name
        shutil.copyfile(model, source)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "onnxruntime.tools.convert_onnx_models_to_ort",
                "--optimization_style",
                "Fixed",
                "--output_dir",
                str(out_dir),
                str(source),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    ort_file = out_dir / f"{model.stem}.ort"
    config = out_dir / f"{model.stem}.required_operators.config"
    if proc.returncode != 0 or not ort_file.is_file():
        raise RuntimeUnavailable(f"ORT format conversion of {model.name} failed:\n{tail(proc)}")
    return ort_file, config


class OrtFormat:
    """Converts each model to ``.ort`` once (kept in a private temporary folder), then runs
    the ``.ort`` file with onnxruntime on the CPU."""

    name = "ort-format"

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="anan_ort_models_")
        self._converted: dict[Path, Path] = {}

    def convert(self, model: str | Path) -> Path:
        """The ``.ort`` file of ``model`` (converted on first use)."""
        key = Path(model).resolve()
        if key not in self._converted:
            out = Path(self._folder.name) / str(len(self._converted))
            self._converted[key] = to_ort(key, out)[0]
        return self._converted[key]

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        return python_cpu.run(self.convert(model), batch)

    def close(self) -> None:
        self._folder.cleanup()
