"""Throughput of predict and tune, local vs Ray, on data made by ``research/scale_data.py``.

Prints one JSON line per measurement: wall seconds, this process's CPU seconds (Ray
workers' CPU is not in it), images per second. The Ray cluster is started once, before
the clock starts (its start-up is printed separately), with ``--workers`` CPUs.

Example::

    python research/scale_data.py /tmp/scale --val 3000
    python benchmarks/scale_bench.py /tmp/scale --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path


def _clock() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_utime + usage.ru_stime


def _report(what: str, n: int, start: tuple[float, float], **extra: object) -> None:
    wall, cpu = (a - b for a, b in zip(_clock(), start, strict=True))
    row = {"what": what, "images": n, "wall_s": round(wall, 2), "driver_cpu_s": round(cpu, 2)}
    row["images_per_s"] = round(n / wall, 1)
    row["load_avg_1min"] = os.getloadavg()[0]  # the machine may be shared: say how busy
    print(json.dumps({**row, **extra}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="folder written by research/scale_data.py")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--skip-tune", action="store_true")
    args = p.parse_args(argv)

    import numpy as np

    from anan_onnx.distributed.predict import JobOptions, predict_parts
    from anan_onnx.distributed.ray_engine import RayEngine
    from anan_onnx.evaluation.tune import Grid, tune
    from anan_onnx.options import RunOptions
    from anan_onnx.runtime.image_files import load_images
    from anan_onnx.runtime.input_paths import iter_inputs
    from anan_onnx.runtime.session import Session

    model, data = args.root / "model.onnx", args.root / "data"
    paths = list(iter_inputs([data / "val"]))
    n = len(paths)

    start = _clock()
    session = Session(model, threads=1)
    spec = session.input_spec()
    for i in range(0, n, args.batch_size):
        batch, _, _ = load_images(paths[i : i + args.batch_size], spec, progress=False)
        session.predict(batch)
    _report("predict local, 1 thread", n, start)

    import ray

    start = _clock()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    _report("ray start", 0, start)
    out = args.root / "bench_predict"
    start = _clock()
    options = JobOptions(batch_size=args.batch_size, workers=args.workers)
    predict_parts(model, [data / "val"], out, engine="ray", options=options)
    _report(f"predict ray, {args.workers} actors x 1 thread", n, start)

    if not args.skip_tune:
        grid = Grid()  # the paper's 240 configurations
        start = _clock()
        local = tune(model, data, grid=grid, run=RunOptions(threads=1, progress=False))
        _report("tune local, 1 thread, 240 configurations", n, start)
        start = _clock()
        spread = tune(model, data, grid=grid, run=RunOptions(progress=False), engine=RayEngine())
        _report(f"tune ray, {args.workers} tasks x 1 thread, 240 configurations", n, start)
        assert spread.rows == local.rows and np.isfinite(spread.best["value"])
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
