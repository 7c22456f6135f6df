"""Benchmark of ``anan-onnx tune``: the paper's 240-configuration grid on 1000 images.

Times :func:`anan_onnx.evaluation.tune.grid_search` (fast path: first layer once per image, the gain
recurrence for all configurations in numpy, the rest of the network once per distinct gain
vector, plus scoring every configuration) a few times and reports the median. Image loading
and the Keras→ONNX export are done once, before timing.

The images are the 697 Cats&Dogs images (train + test) and horizontally flipped copies of
the first ones up to ``--images``, labelled by their class folders.

Usage::

    .venv/bin/python benchmarks/bench_tune.py                  # demo model, 1000 images, 3 runs
    .venv/bin/python benchmarks/bench_tune.py --rule additive --repeats 1
    .venv/bin/python benchmarks/bench_tune.py --naive 8 --json out/bench_tune.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "catsdogs_cnn.keras")
    p.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data" / "cats_dogs")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rule", choices=("multiplicative", "additive"), default="multiplicative")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    p.add_argument(
        "--naive",
        type=int,
        default=0,
        metavar="N",
        help="also time the tunable ONNX export run configuration by configuration on N "
        "configurations spread over the grid, extrapolated to the whole grid",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def images(data: Path, spec, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n images in the model layout: the data set's files, then flipped copies."""
    from anan_onnx import load_images

    classes = sorted(d.name for d in (data / "train").iterdir() if d.is_dir())
    files, labels = [], []
    for split in ("train", "test"):
        for label, name in enumerate(classes):
            found = sorted((data / split / name).iterdir())
            files += found
            labels += [label] * len(found)
    x, _, _ = load_images(files, spec, progress=False)
    y = np.asarray(labels)
    while len(x) < n:  # flipped copies: new inputs with real image statistics
        extra = min(n - len(x), len(files))
        axis = 2 if spec.layout == "NHWC" else 3
        x = np.concatenate([x, np.flip(x[:extra], axis=axis)])
        y = np.concatenate([y, y[:extra]])
    return np.ascontiguousarray(x[:n]), y[:n]


def naive_seconds(base, x: np.ndarray, grid, rule: str, n: int, threads: int | None) -> float:
    """Seconds per configuration of the tunable export on all of ``x`` (median of ``n``)."""
    from anan_onnx import AnanParams, convert_model

    if str(REPO) not in sys.path:  # run by path (the command docs/reproduction.md quotes)
        sys.path.insert(0, str(REPO))
    from benchmarks.ort_session import open_session

    points = grid.points(rule)
    model = convert_model(base, AnanParams(rule=rule), tunable=True, k_max=max(grid.k)).anan
    session = open_session(model.SerializeToString(), threads=threads or None, quiet=True)
    name = session.get_inputs()[0].name
    times = []
    for point in points[:: max(1, len(points) // n)][:n]:
        feeds = {
            f"anan_{p}": np.asarray(getattr(point, p), np.float32)
            for p in ("k", "mu", "a", "b", "idle")
        }
        start = time.perf_counter()
        for i in range(0, len(x), 256):
            session.run(None, {name: x[i : i + 256], **feeds})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import onnxruntime

    from anan_onnx import InputSpec
    from anan_onnx.evaluation.grid import Grid
    from anan_onnx.evaluation.tune import grid_search, load_model
    from anan_onnx.metadata import read_metadata
    from anan_onnx.options import RunOptions

    base = load_model(args.model)
    spec = InputSpec.from_metadata(read_metadata(base))
    x, y = images(args.data, spec, args.images)
    grid = Grid(rules=(args.rule,))
    load = os.getloadavg()
    runs, rest_rows = [], 0
    for i in range(args.repeats):
        start = time.perf_counter()
        result = grid_search(base, x, y, grid, run=RunOptions(threads=args.threads, progress=False))
        runs.append(time.perf_counter() - start)
        rest_rows = result.rest_rows
        print(f"run {i + 1}: {runs[-1]:.1f} s ({result.rest_rows} rest-of-network rows)")
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "model": str(args.model),
        "images": len(x),
        "input": spec.describe(),
        "configurations": grid.size,
        "rule": args.rule,
        "runs_s": [round(r, 2) for r in runs],
        "median_s": round(statistics.median(runs), 2),
        "rest_rows": rest_rows,
        "distinct_gain_vectors_per_image": round(rest_rows / len(x), 1),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
    if args.naive:
        per_config = naive_seconds(base, x, grid, args.rule, args.naive, args.threads)
        record["naive_tunable_export_s_per_config"] = round(per_config, 3)
        record["naive_tunable_export_grid_estimate_s"] = round(per_config * grid.size, 1)
        record["speedup_vs_naive"] = round(per_config * grid.size / record["median_s"], 2)
    print(json.dumps(record, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
