"""Runtime: the onnxruntime C++ API, through the C++ example (examples/cpp, ``anan_infer``).

:func:`build` fetches the onnxruntime C++ SDK on first use (tools/get_onnxruntime_cpp.sh,
into third_party/onnxruntime or ``$ANAN_ORT_SDK``) and builds the example with CMake into
build/anan_infer (or ``$ANAN_CPP_BUILD_DIR``); later calls only re-check the build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anan_onnx.conformance._process import RuntimeUnavailable, json_rows, locked, repo_root, tail

__all__ = ["Cpp", "build", "build_dir", "sdk_dir"]


def sdk_dir() -> Path:
    return Path(os.environ.get("ANAN_ORT_SDK", repo_root() / "third_party" / "onnxruntime"))


def build_dir() -> Path:
    return Path(os.environ.get("ANAN_CPP_BUILD_DIR", repo_root() / "build" / "anan_infer"))


def _check_toolchain() -> None:
    problems = []
    if shutil.which("cmake") is None:
        problems.append("cmake is not on PATH (apt-get install cmake)")
    compilers = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        problems.append("no C++ compiler (set CXX, or apt-get install g++)")
    if problems:
        raise RuntimeUnavailable("cannot build examples/cpp: " + "; ".join(problems))


def _sdk_present(sdk: Path) -> bool:
    return (sdk / "include" / "onnxruntime_cxx_api.h").is_file() and (
        sdk / "lib" / "libonnxruntime.so"
    ).exists()


def _ensure_sdk(sdk: Path) -> None:
    if _sdk_present(sdk):
        return
    script = repo_root() / "tools" / "get_onnxruntime_cpp.sh"
    proc = subprocess.run(
        ["bash", str(script), str(sdk)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0 or not _sdk_present(sdk):
        raise RuntimeUnavailable(
            f"could not get the onnxruntime C++ SDK with {script.name}:\n{tail(proc)}"
        )


def _cmake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["cmake", *args], capture_output=True, text=True, timeout=900)


def _compile(sdk: Path, build: Path) -> Path:
    example = repo_root() / "examples" / "cpp"
    configure = ("-S", str(example), "-B", str(build), f"-DONNXRUNTIME_ROOT={sdk}")
    proc = _cmake(*configure)
    if proc.returncode != 0:  # e.g. a cache left by a copy of the repository elsewhere
        shutil.rmtree(build, ignore_errors=True)
        proc = _cmake(*configure)
    if proc.returncode != 0:
        raise RuntimeUnavailable(f"cmake configure of examples/cpp failed:\n{tail(proc)}")
    proc = _cmake("--build", str(build), "--parallel", str(os.cpu_count() or 2))
    if proc.returncode != 0:
        raise RuntimeUnavailable(f"cmake build of examples/cpp failed:\n{tail(proc)}")
    return build / "anan_infer"


def build() -> Path:
    """Path of the built anan_infer program (SDK fetched and program built when needed)."""
    _check_toolchain()
    sdk, folder = sdk_dir(), build_dir()
    with locked(folder.parent / ".anan_infer.lock"):
        _ensure_sdk(sdk)
        binary = _compile(sdk, folder)
    if not binary.is_file():
        raise RuntimeUnavailable(f"the build of examples/cpp produced no {binary}")
    return binary


class Cpp:
    """The C++ example program: one process per run, a ``.npy`` batch in, JSON out."""

    name = "cpp"

    def __init__(self) -> None:
        self._binary = build()
        self._folder = tempfile.TemporaryDirectory(prefix="anan_cpp_")

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        npy = Path(self._folder.name) / "batch.npy"
        np.save(npy, np.ascontiguousarray(batch, np.float32))
        return self._json(model, [npy])

    def run_images(self, model: str | Path, images: Sequence[str | Path]) -> np.ndarray:
        """The model's first output for PPM/PGM image files, preprocessed by the program
        itself from the model's anan.* metadata (scale/offset per channel, channel order)."""
        return self._json(model, images)

    def _json(self, model: str | Path, inputs: Sequence[str | Path]) -> np.ndarray:
        proc = subprocess.run(
            [str(self._binary), "--json", "--quiet", str(model), *map(str, inputs)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeUnavailable(f"anan_infer failed on {Path(model).name}:\n{tail(proc)}")
        return json_rows(proc.stdout)

    def close(self) -> None:
        self._folder.cleanup()
