"""Compares the export simplifiers (none, onnxslim, onnxsim) on one ANAN model: nodes, file
size, and batch-1 CPU latency (one thread, median), each export checked exact first.

    python -m benchmarks.simplifier_compare out/catsdogs.anan.onnx [--runs 200]

Prints a Markdown table for docs/deployment.md ("Simplifiers compared").
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from anan_onnx.export import export_model
from anan_onnx.reference.verify import random_inputs
from anan_onnx.runtime.session import Session
from benchmarks.ort_session import open_session


def latency_ms(model: Path, batch: np.ndarray, runs: int) -> float:
    """Median of ``runs`` single-image runs, interleaving nothing: one session, one thread."""
    session = open_session(model, threads=1, inter_threads=1)
    name = session.get_inputs()[0].name
    for _ in range(20):
        session.run(None, {name: batch})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: batch})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args(argv)
    image = random_inputs(Session(args.model), 1, seed=3)
    rows, files = [], {}
    with tempfile.TemporaryDirectory(prefix="anan_simplifiers_") as scratch:
        for name in ("none", "onnxslim", "onnxsim"):
            result = export_model(args.model, "mobile", Path(scratch) / name, simplifier=name)
            files[name] = result
        timings: dict[str, list[float]] = {name: [] for name in files}
        for _ in range(args.rounds):  # interleaved, so load on the machine hits all alike
            for name, result in files.items():
                timings[name].append(latency_ms(result.files[0], image, args.runs))
        for name, result in files.items():
            onnx_file = result.files[0]
            rows.append(
                f"| {name} | {result.nodes_after} | {onnx_file.stat().st_size / 1024:.1f} | "
                f"{statistics.median(timings[name]):.3f} | "
                f"{max(r.max_diff for r in result.exactness):.1e} |"
            )
    print("| simplifier | nodes | ONNX KiB | batch-1 CPU ms (median) | max diff vs input |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
