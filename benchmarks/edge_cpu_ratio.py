"""ANAN/base cost on edge CNNs in process CPU time, one onnxruntime thread, interleaved.

For each keras.applications model named (default MobileNetV2, MobileNetV3Small,
EfficientNetB0; random seeded weights, 224×224×3, 10 logits), builds it in a subprocess,
converts it with the CLI's default options, then times the base and the ANAN model in this
process with ``time.process_time`` around ``session.run`` (``intra_op_num_threads=1``,
``inter_op_num_threads=1``, ``ORT_SEQUENTIAL``): base and ANAN runs alternate (the order
flips every round) so both see the same machine, and the ratio is of the medians. With
``--profile`` it also prints, from an onnxruntime profile of the ANAN model, the share of
the share of each model's time spent in its stem (the nodes before the second Conv), where
the ANAN model loses onnxruntime's Conv + BatchNormalization + activation fusion.

``--scan`` also converts with ``--scaling scan`` (the modulated stage image by image) and
``--floor`` adds the floor stand-in (``benchmarks/floor_graph.py``); all sessions then
rotate round by round and each gets its ratio to the base (median of the per-round ratios
in ``pair_ratio_median``, or ``<name>_pair_ratio``).

Example:
    .venv/bin/python -m benchmarks.edge_cpu_ratio                  # ~5 min on 2 busy cores
    .venv/bin/python -m benchmarks.edge_cpu_ratio --models MobileNetV2 --batches 1 --profile
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from benchmarks.floor_graph import floor_stand_in
from benchmarks.ort_session import open_session

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("MobileNetV2", "MobileNetV3Small", "EfficientNetB0")
BUILD = """
import sys, keras
keras.utils.set_random_seed(0)
model = getattr(keras.applications, sys.argv[1])(
    weights=None, input_shape=(224, 224, 3), classes=10, classifier_activation=None)
model.save(sys.argv[2])
"""


def convert(name: str, folder: Path, *extra: str) -> tuple[Path, Path]:
    """Builds ``name`` and converts it with the default options (and the ``extra`` CLI
    options, e.g. ``--scaling scan``); (base, anan) paths."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    tag = "".join(extra).replace("-", "")
    source, anan = folder / f"{name}.keras", folder / f"{name}.anan{tag}.onnx"
    build = [] if source.exists() else [[sys.executable, "-c", BUILD, name, str(source)]]
    for command in (
        *build,
        [sys.executable, "-m", "anan_onnx", "convert", str(source), "-o", str(anan), *extra],
    ):
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"edge_cpu_ratio: {' '.join(command[:4])} failed: {done.stderr}")
    return folder / f"{name}.base.onnx", anan


def session(path: Path, profile: bool = False) -> ort.InferenceSession:
    """One thread, sequential, quiet (unused initializers are reported as warnings otherwise)."""
    settings = dict(threads=1, inter_threads=1, sequential=True, quiet=True)
    return open_session(path, **settings, profile=profile)


def cpu_seconds(sess: ort.InferenceSession, feed: dict[str, np.ndarray]) -> float:
    start = time.process_time()
    sess.run(None, feed)
    return time.process_time() - start


def measure(
    base: Path, anan: Path, batch: int, rounds: int, others: dict[str, Path] | None = None
) -> dict[str, float]:
    """Interleaved CPU times of the models at ``batch``; medians and their ratios."""
    paths = {"base": base, "anan": anan, **(others or {})}
    sessions = {key: session(path) for key, path in paths.items()}
    name = sessions["base"].get_inputs()[0].name
    x = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3)).astype(np.float32)
    feed = {name: x}
    for sess in sessions.values():  # warm-up: allocations, first-run kernel choices
        for _ in range(3):
            sess.run(None, feed)
    times: dict[str, list[float]] = {key: [] for key in sessions}
    keys = list(sessions)
    for i in range(rounds):
        order = keys[i % len(keys) :] + keys[: i % len(keys)]
        for key in order:
            times[key].append(cpu_seconds(sessions[key], feed))
    base_ms, anan_ms = (1e3 * statistics.median(times[k]) for k in ("base", "anan"))
    pairs = [a / b for a, b in zip(times["anan"], times["base"], strict=True)]
    row = dict(
        batch=batch,
        rounds=rounds,
        base_ms=round(base_ms, 3),
        anan_ms=round(anan_ms, 3),
        ratio=round(anan_ms / base_ms, 4),
        pair_ratio_median=round(statistics.median(pairs), 4),
    )
    for key in others or {}:
        ratios = [a / b for a, b in zip(times[key], times["base"], strict=True)]
        row[f"{key}_ms"] = round(1e3 * statistics.median(times[key]), 3)
        row[f"{key}_pair_ratio"] = round(statistics.median(ratios), 4)
    return row


def node_times(path: Path, batch: int, runs: int) -> dict[str, float]:
    """Microseconds per run of each node (as onnxruntime ran it, after its fusions)."""
    sess = session(path, profile=True)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3)).astype(np.float32)
    for _ in range(runs):
        sess.run(None, {name: x})
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    per_node: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"][: -len("_kernel_time")]
            label = f"{node} ({event['args'].get('op_name', '?')})"
            per_node[label] = per_node.get(label, 0.0) + event["dur"] / runs
    return per_node


def profile(base: Path, anan: Path, batch: int, runs: int) -> dict[str, object]:
    """Time of the stem (the nodes before the second Conv onnxruntime runs), base and ANAN.

    onnxruntime fuses the base model's first Conv with the per-channel Mul/Add and the
    activation after it and keeps the result in its blocked layout; in the ANAN model the
    gains (a run-time tensor) sit between them, so the Mul, Add, activation and two layout
    reorders run on their own over the first layer's full maps. The stem's share shows it.
    """
    out: dict[str, object] = dict(batch=batch)
    for kind, path in (("base", base), ("anan", anan)):
        times = node_times(path, batch, runs)
        stem, convs = {}, 0
        for label, us in times.items():  # in execution order
            convs += label.endswith("(Conv)") or label.endswith("(FusedConv)")
            if convs >= 2:
                break
            stem[label] = us
        total = sum(times.values())
        out[f"{kind}_stem_share"] = round(sum(stem.values()) / total, 4)
        if kind == "anan":
            top = sorted(stem.items(), key=lambda kv: -kv[1])[:8]
            out["anan_stem_nodes"] = [(k, round(v / total, 4)) for k, v in top]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--rounds", type=int, default=0, help="default: 200 at batch 1, else 40")
    parser.add_argument("--profile", action="store_true", help="also profile the ANAN models")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--scan", action="store_true", help="also --scaling scan")
    parser.add_argument("--floor", action="store_true", help="also the floor stand-in")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-ratio-") as scratch:
        for name in args.models.split(","):
            base, anan = convert(name, Path(scratch))
            others = {}
            if args.scan:
                others["scan"] = convert(name, Path(scratch), "--scaling", "scan")[1]
            if args.floor:
                others["floor"] = Path(scratch) / f"{name}.floor.onnx"
                onnx.save(floor_stand_in(onnx.load(base)), others["floor"])
            for batch in (int(b) for b in args.batches.split(",")):
                rounds = args.rounds or _rounds(batch)
                row = dict(model=name, **measure(base, anan, batch, rounds, others))
                if args.profile:
                    row["profile"] = profile(base, anan, batch, runs=10 if batch > 1 else 50)
                results.append(row)
                print(json.dumps(row), flush=True)
    extra = [k[: -len("_pair_ratio")] for k in results[0] if k.endswith("_pair_ratio")]
    head = "".join(f" {k}/base |" for k in extra)
    print(
        f"\n| model | batch | base ms (CPU) | ANAN ms (CPU) | ANAN/base | median pair ratio |{head}"
    )
    print("|---|---|---|---|---|---|" + "---|" * len(extra))
    for r in results:
        cells = "".join(f" {r[k + '_pair_ratio']:.3f} |" for k in extra)
        print(
            f"| {r['model']} | {r['batch']} | {r['base_ms']:.2f} | {r['anan_ms']:.2f} | "
            f"{r['ratio']:.3f} | {r['pair_ratio_median']:.3f} |{cells}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _rounds(batch: int) -> int:
    return 200 if batch == 1 else 40


if __name__ == "__main__":
    sys.exit(main())
