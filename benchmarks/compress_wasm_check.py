"""Runs compressed ANAN models in onnxruntime-web (WASM, headless Chromium) vs onnxruntime CPU.

Needs :mod:`anan_onnx.conformance.web` (the edge-portability work; until it is merged, run
this with a checkout of that branch first on ``PYTHONPATH``), Playwright and Chromium.
Models: the ones ``tools/compress_report.py`` wrote (default ``out/compress_report``).

Example::

    python -m benchmarks.compress_wasm_check out/compress_report/cats_dogs --images 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.ort_session import open_session

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="folder with *.anan.onnx / *.base.onnx models")
    p.add_argument("--images", type=int, default=8, help="random images per model")
    args = p.parse_args()
    try:
        from anan_onnx.conformance.web import Browser
    except ImportError:
        print("anan_onnx.conformance.web is not here: see this script's docstring", file=sys.stderr)
        return 2
    models = sorted(args.folder.glob("*.onnx"))
    with Browser() as browser:
        for path in models:
            cpu = open_session(path)
            shape = [args.images, *cpu.get_inputs()[0].shape[1:]]
            x = np.random.default_rng(0).random(shape, dtype=np.float32)
            want = cpu.run(None, {cpu.get_inputs()[0].name: x})[0]
            try:
                got = browser.run(path, x, "wasm").reshape(want.shape)
            except Exception as exc:  # a runtime refusal is a result here, not a crash
                print(f"{path.name}: WASM error: {str(exc).splitlines()[0]}")
                continue
            print(f"{path.name}: WASM max abs diff vs CPU {np.abs(got - want).max():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
