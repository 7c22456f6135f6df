"""Section 4: conversion time, in a warm process and through the CLI in a fresh one."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench.config import Plan
from benchmarks.bench.models import Prepared
from benchmarks.bench.stats import summary


def run_conversion(prep: Prepared, plan: Plan, tmp: Path) -> dict[str, Any]:
    """Section 4: ``convert_file`` in this (warm) process, and the CLI in a fresh process."""
    from anan_onnx import AnanParams, convert_file

    convert_file(prep.source, tmp / "warm.anan.onnx", AnanParams())  # imports, traces once
    times = []
    for i in range(plan.conversion_reps):
        start = time.perf_counter()
        convert_file(prep.source, tmp / f"conv{i}.anan.onnx", AnanParams())
        times.append(time.perf_counter() - start)
    result: dict[str, Any] = {
        "model": prep.spec.name,
        "source": prep.source.suffix,
        "warm_s": summary(times),
    }
    if not plan.quick:
        code = (
            "from anan_onnx.cli import main; raise SystemExit(main(['convert', "
            f"{str(prep.source)!r}, '-o', {str(tmp / 'cli.anan.onnx')!r}]))"
        )
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp)
        result["fresh_process_s"] = time.perf_counter() - start
        result["fresh_process_rc"] = proc.returncode
    return result
