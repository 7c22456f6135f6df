"""ANAN/base cost in process CPU time, one onnxruntime thread, sessions interleaved.

    PYTHONPATH=. .venv/bin/python tools/cpu_ratio.py [--compare /path/to/other/checkout]

Models: the bundled 128×128 CNN (``models/catsdogs_cnn.keras``, converted with the default
options) and the 224×224 variant of ``tools/bench_anan.py`` (built in ONNX, seeded). Each
session runs with ``intra_op_num_threads=1``, ``inter_op_num_threads=1`` and sequential
execution, so ``time.process_time`` counts the work itself rather than the wall clock of a
shared machine. Per round every session runs in a rotated order (batch 1: ``--runs1`` runs,
batch 64: ``--runs64``), each run timed alone; the table gives per session the median CPU
time per run over all rounds and the ratio of medians to the base CNN (and the median of
the per-round ratios). With ``--compare DIR`` the ANAN models are also converted by the
anan_onnx of checkout DIR (in a subprocess with that checkout on ``PYTHONPATH``), so an
old and a new graph are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "models" / "catsdogs_cnn.keras"


def _convert(base_path: str, out_path: str, fold: str) -> None:
    """Subprocess entry: convert ``base_path`` with this interpreter's anan_onnx."""
    import onnx

    import anan_onnx

    anan = anan_onnx.convert_model(
        onnx.load(base_path), anan_onnx.AnanParams(), fold_steps=fold == "1"
    ).anan
    onnx.save(anan, out_path)


def _bases(tmp: Path) -> dict[str, Path]:
    """The two base CNNs as ONNX files (dynamic batch)."""
    import onnx

    import anan_onnx

    sys.path.insert(0, str(ROOT / "tools"))
    import bench_anan  # the 224×224 variant, built without TensorFlow

    paths = {"128": tmp / "base128.onnx", "224": tmp / "base224.onnx"}
    onnx.save(anan_onnx.load_base(BUNDLED), paths["128"])
    onnx.save(anan_onnx.load_base(_save(bench_anan, tmp)), paths["224"])
    return paths


def _save(bench_anan: Any, tmp: Path) -> Path:
    import onnx

    path = tmp / "raw224.onnx"
    onnx.save(bench_anan.build_onnx(bench_anan.MODELS["224"], seed=0), path)
    return path


def _converted(base: Path, tmp: Path, label: str, checkout: Path, fold: bool) -> Path:
    out = tmp / f"{base.stem}_{label}.onnx"
    env = dict(os.environ, PYTHONPATH=str(checkout))
    command = [sys.executable, __file__, "--convert", str(base), str(out), "1" if fold else "0"]
    subprocess.run(command, check=True, env=env, cwd=str(checkout))
    return out


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


Times = dict[str, list[float]]


def _measure(
    models: dict[str, Path], batch: int, size: int, rounds: int, runs: int
) -> tuple[Times, Times]:
    """Per session: CPU seconds of every run, and per round the median of its runs."""
    sessions = {name: _session(path) for name, path in models.items()}
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    feeds = {name: {s.get_inputs()[0].name: x} for name, s in sessions.items()}
    for name, s in sessions.items():  # warm-up
        s.run(None, feeds[name])
    per_round: Times = {name: [] for name in sessions}
    every: Times = {name: [] for name in sessions}
    names = list(sessions)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times = []
            for _ in range(runs):
                start = time.process_time()
                sessions[name].run(None, feeds[name])
                times.append(time.process_time() - start)
            every[name] += times
            per_round[name].append(statistics.median(times))
    return every, per_round


def _report(label: str, every: Times, per_round: Times) -> None:
    base = statistics.median(every["base"])
    print(f"\n{label}")
    print(
        "| model | median CPU ms/run | ANAN/base (ratio of medians) | median of per-round ratios |"
    )
    print("|---|---|---|---|")
    for name in every:
        med = statistics.median(every[name])
        rounds = [a / b for a, b in zip(per_round[name], per_round["base"], strict=True)]
        print(f"| {name} | {med * 1e3:.3f} | {med / base:.3f} | {statistics.median(rounds):.3f} |")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", type=Path, help="another checkout to convert with too")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs1", type=int, default=30, help="runs per round at batch 1")
    parser.add_argument("--runs64", type=int, default=2, help="runs per round at batch 64")
    parser.add_argument("--models", default="128,224")
    parser.add_argument("--fold", action="store_true", help="also measure --fold-steps")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, 1 thread, process CPU time; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bases = _bases(tmp)
        for key in args.models.split(","):
            models = {"base": bases[key], "anan": _converted(bases[key], tmp, "new", ROOT, False)}
            if args.fold:
                models["anan fold"] = _converted(bases[key], tmp, "fold", ROOT, True)
            if args.compare:
                models["anan (compare)"] = _converted(bases[key], tmp, "old", args.compare, False)
            size = int(key)
            for batch, runs in ((1, args.runs1), (64, args.runs64)):
                every, per_round = _measure(models, batch, size, args.rounds, runs)
                _report(f"{key}×{key}, batch {batch}", every, per_round)
            sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--convert":
        _convert(*sys.argv[2:5])
    else:
        main()
