"""ANAN/base cost in process CPU time, one onnxruntime thread, sessions interleaved.

    .venv/bin/python -m benchmarks.cpu_ratio [--compare DIR] [--fold] [--unroll] [--broadcast]
        [--ablate] [--scan] [--floor] [--batches 1,4,16,64]

Models (``--models``): ``128`` and ``224``, the two CNNs of ``python -m benchmarks.bench`` (built
in ONNX, seeded; docs/performance.md names them), and ``bundled``, the 128×128 CNN the package
ships (``models/catsdogs_cnn.keras``: 16/32/64 filters, so its first layer, where ANAN's
work sits, is a larger share of the whole than in the benchmark's 32/64/128). All are
converted with the default options. Each
session runs with ``intra_op_num_threads=1``, ``inter_op_num_threads=1`` and sequential
execution, so ``time.process_time`` counts the work itself rather than the wall clock of a
shared machine. Per round every session runs a block of runs (batch 1: ``--runs1``, batch
64: ``--runs64``) in a rotated order, each block timed as a whole; the table gives per
session the median over rounds of the CPU time per run, its ratio to the base CNN's, and
the median of the per-round ratios. With ``--compare DIR`` the ANAN models are also converted by the
anan_onnx of checkout DIR (in a subprocess with that checkout on ``PYTHONPATH``), so an
old and a new graph are measured in the same run. ``--scan`` adds ``--scaling scan`` (the
modulated stage image by image, ``routes/batch_scan.py``), ``--floor`` the floor stand-in
(``benchmarks/floor_graph.py``: the base CNN plus one per-image, per-kernel ``Mul``, the
least extra pass an exact graph needs). After the batches, the best-throughput ratio: each
model's least CPU time per image over the batches, over the base CNN's least.
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


#: ``--ablate``: the default graph with parts taken out again (wrong outputs on purpose, see
#: ``benchmarks/bench/ablate.py``): what the steps, and the final scaling, cost.
ABLATIONS = ("no steps", "no steps, no scaling")


def _convert(base_path: str, out_path: str, variant: str) -> None:
    """Subprocess entry: convert ``base_path`` with this interpreter's anan_onnx."""
    import onnx

    import anan_onnx

    base, params = onnx.load(base_path), anan_onnx.AnanParams()
    if variant == "floor":
        sys.path.insert(0, str(ROOT))
        from benchmarks.floor_graph import floor_stand_in

        onnx.save(floor_stand_in(base), out_path)
        return
    scaling = variant if variant in ("broadcast", "scan") else "blocked"
    options: dict[str, object] = {"scaling": scaling}
    if variant in ("fold", "unroll"):  # else the checkout's own default (--compare: older ones)
        options["fold_steps"] = variant == "fold"
    anan = anan_onnx.convert_model(base, params, **options).anan
    if variant in ABLATIONS:
        sys.path.insert(0, str(ROOT))
        from benchmarks.bench.ablate import without_scaling, without_steps

        anan = without_steps(anan)
        anan = without_scaling(anan) if variant == "no steps, no scaling" else anan
    onnx.save(anan, out_path)


def _bases(tmp: Path) -> dict[str, Path]:
    """The base CNNs as ONNX files (dynamic batch), by ``--models`` name."""
    import onnx

    import anan_onnx

    sys.path.insert(0, str(ROOT))
    from benchmarks.bench.config import MODELS
    from benchmarks.bench.models import build_onnx  # the benchmark's CNNs, built without TF

    paths = {"bundled": tmp / "base_bundled.onnx"}
    onnx.save(anan_onnx.load_base(BUNDLED), paths["bundled"])
    for key in ("128", "224"):
        raw, paths[key] = tmp / f"raw{key}.onnx", tmp / f"base{key}.onnx"
        onnx.save(build_onnx(MODELS[key], seed=0), raw)
        onnx.save(anan_onnx.load_base(raw), paths[key])
    return paths


def _converted(base: Path, tmp: Path, label: str, checkout: Path, variant: str) -> Path:
    out = tmp / f"{base.stem}_{label.replace(' ', '_').replace(',', '')}.onnx"
    env = dict(os.environ, PYTHONPATH=str(checkout))
    command = [sys.executable, __file__, "--convert", str(base), str(out), variant]
    subprocess.run(command, check=True, env=env, cwd=str(checkout))
    return out


def _session(path: Path) -> Any:
    """One thread, sequential, idle threads asleep (so sessions never compete)."""
    # imported here: the --convert child runs with another checkout on PYTHONPATH
    from benchmarks.ort_session import open_session

    return open_session(path, threads=1, inter_threads=1, sequential=True, spinning=False)


Times = dict[str, list[float]]


def _measure(models: dict[str, Path], batch: int, size: int, rounds: int, runs: int) -> Times:
    """Per session and round: CPU seconds per run, over a block of ``runs`` runs (timed as
    a block: one clock reading per block, so its resolution and cost do not matter)."""
    sessions = {name: _session(path) for name, path in models.items()}
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    feeds = {name: {s.get_inputs()[0].name: x} for name, s in sessions.items()}
    for name, s in sessions.items():  # warm-up
        s.run(None, feeds[name])
    per_round: Times = {name: [] for name in sessions}
    names = list(sessions)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            session, feed = sessions[name], feeds[name]
            start = time.process_time()
            for _ in range(runs):
                session.run(None, feed)
            per_round[name].append((time.process_time() - start) / runs)
    return per_round


def _best_throughput(per_image: dict[int, dict[str, float]]) -> None:
    """Each model's least median CPU time per image over the batches, over the base's."""
    names = next(iter(per_image.values()))
    best = {name: min(times[name] for times in per_image.values()) for name in names}
    print("\nbest throughput (least CPU ms per image over the batches; ratio to the base's)")
    print("| model | batch | CPU ms/image | ratio |")
    print("|---|---|---|---|")
    for name, value in best.items():
        batch = min(per_image, key=lambda b: per_image[b][name])
        print(f"| {name} | {batch} | {value * 1e3:.3f} | {value / best['base']:.3f} |")


def _report(label: str, per_round: Times) -> None:
    base = statistics.median(per_round["base"])
    print(f"\n{label}")
    print(
        "| model | median CPU ms/run | ANAN/base (ratio of medians) | median of per-round ratios |"
    )
    print("|---|---|---|---|")
    for name in per_round:
        med = statistics.median(per_round[name])
        rounds = [a / b for a, b in zip(per_round[name], per_round["base"], strict=True)]
        print(f"| {name} | {med * 1e3:.3f} | {med / base:.3f} | {statistics.median(rounds):.3f} |")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", type=Path, help="another checkout to convert with too")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs1", type=int, default=200, help="runs per round at batch 1")
    parser.add_argument("--runs64", type=int, default=3, help="runs per round at batch 64")
    parser.add_argument("--models", default="128,224,bundled", help="of 128, 224, bundled")
    parser.add_argument("--fold", action="store_true", help="also measure --fold-steps")
    parser.add_argument("--unroll", action="store_true", help="also measure --no-fold-steps")
    parser.add_argument("--ablate", action="store_true", help="also the stand-in graphs")
    parser.add_argument("--broadcast", action="store_true", help="also measure --scaling broadcast")
    parser.add_argument("--scan", action="store_true", help="also measure --scaling scan")
    parser.add_argument("--floor", action="store_true", help="also the floor stand-in")
    parser.add_argument("--batches", default="1,64", help="e.g. 1,4,16,64")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, 1 thread, process CPU time; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bases = _bases(tmp)
        for key in args.models.split(","):
            base = bases[key]
            models = {"base": base, "anan": _converted(base, tmp, "new", ROOT, "default")}
            if args.fold:
                models["anan fold"] = _converted(base, tmp, "fold", ROOT, "fold")
            if args.unroll:
                models["anan unroll"] = _converted(base, tmp, "unroll", ROOT, "unroll")
            if args.broadcast:
                models["anan broadcast"] = _converted(base, tmp, "broadcast", ROOT, "broadcast")
            if args.scan:
                models["anan scan"] = _converted(base, tmp, "scan", ROOT, "scan")
            if args.floor:
                models["floor"] = _converted(base, tmp, "floor", ROOT, "floor")
            if args.compare:
                models["anan (compare)"] = _converted(base, tmp, "old", args.compare, "default")
            for name in ABLATIONS if args.ablate else ():
                models[name] = _converted(base, tmp, name, ROOT, name)
            size = 224 if key == "224" else 128
            per_image = {}
            for batch in (int(b) for b in args.batches.split(",")):
                # batch 1: runs1 runs a round; larger batches about as many images as 64·runs64
                runs = args.runs1 if batch == 1 else max(args.runs64, args.runs64 * 64 // batch)
                per_round = _measure(models, batch, size, args.rounds, runs)
                _report(
                    f"{key} ({size}×{size}), batch {batch}, {args.rounds} rounds of {runs} runs",
                    per_round,
                )
                per_image[batch] = {n: statistics.median(t) / batch for n, t in per_round.items()}
                sys.stdout.flush()
            _best_throughput(per_image)
            sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--convert":
        _convert(*sys.argv[2:5])
    else:
        main()
