"""``predict -o DIR`` at scale: CPU cost per image, and the driver's peak memory vs input count.

Two measurements, each printed as one JSON line (with the machine's load average, since a
shared machine makes every timing a lower bound on speed):

* ``cost MODEL FOLDER``: the local engine, one onnxruntime thread, on the images of
  FOLDER (e.g. the bundled 128x128 Cats&Dogs CNN on its test images): CPU seconds of the
  process (user + system, read, decode, resize, run, write the parts) per image, and
  CPU-hours per 10^6 images.
* ``memory ADDRESS --images N [N ...]``: for each N, N tiny PNGs (32x32) are written to a
  scratch folder and ``anan-onnx predict --engine ray --address ADDRESS -o DIR`` runs as a
  child process; its peak resident memory (``ru_maxrss`` of the child) is the driver's
  peak. The cluster is started beforehand (``ray start --head``), so that the child is the
  driver only.

Example::

    python benchmarks/scale_predict.py cost model.anan.onnx /data/cats_dogs/test
    RAY_AUTH_MODE=disabled ray start --head --port=6390 --num-cpus=2 --include-dashboard=false
    RAY_AUTH_MODE=disabled python benchmarks/scale_predict.py memory 127.0.0.1:6390 \\
        --images 300 30000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _row(**values: object) -> None:
    values["load_avg_1min"] = round(os.getloadavg()[0], 2)  # how busy the machine was
    print(json.dumps(values), flush=True)


def cost(model: Path, folder: Path, block: int) -> None:
    """CPU per image of the local engine on ``folder`` (1 thread)."""
    from anan_onnx.distributed.predict import JobOptions, predict_parts

    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter(), time.process_time()
        summary = predict_parts(model, [folder], Path(scratch) / "out",
                                options=JobOptions(block=block, threads=1))  # fmt: skip
        wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    per_image = cpu / summary.images
    _row(what="predict -o, local engine, 1 thread", model=model.name, images=summary.images,
         failed=summary.failed, wall_s=round(wall, 2), cpu_s=round(cpu, 2),
         cpu_ms_per_image=round(1000 * per_image, 3),
         cpu_hours_per_million=round(per_image * 1e6 / 3600, 2))  # fmt: skip


def _tiny_images(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / f"{i // 1000:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            sub / f"{i:06d}.png"
        )


def _tiny_model(path: Path) -> None:
    import onnx

    from anan_onnx.metadata import write_metadata
    from anan_onnx.runtime.inputs import InputSpec
    from anan_onnx.testing import build_base_cnn

    model = build_base_cnn(32, 3, (4,), dense=8)
    write_metadata(model, InputSpec("NHWC", 32, 32, 3).to_metadata())
    onnx.save(model, path)


def memory(address: str, counts: list[int], block: int) -> None:
    """The driver's peak RSS for each input count, one fresh driver process each."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        _tiny_model(root / "m.onnx")
        for n in counts:
            images = root / f"images{n}"
            _tiny_images(images, n)
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "anan_onnx", "predict", str(root / "m.onnx"),
                 str(images), "--engine", "ray", "--address", address,
                 "-o", str(root / f"out{n}"), "--block-images", str(block)],
                capture_output=True, text=True,
            )  # fmt: skip
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            _row(what="predict --engine ray, driver peak RSS", images=n, block=block,
                 wall_s=round(time.perf_counter() - start, 1),
                 driver_peak_mib=round(peak / 1024, 1),
                 exact=peak > before)  # fmt: skip  # False: an earlier child peaked higher


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost", help="CPU per image, local engine")
    c.add_argument("model", type=Path)
    c.add_argument("folder", type=Path)
    c.add_argument("--block-images", type=int, default=1000)
    m = sub.add_parser("memory", help="driver peak memory vs input count, on a Ray cluster")
    m.add_argument("address")
    m.add_argument("--images", type=int, nargs="+", default=[300, 30000])
    m.add_argument("--block-images", type=int, default=1000)
    args = p.parse_args(argv)
    if args.what == "cost":
        cost(args.model, args.folder, args.block_images)
    else:
        memory(args.address, sorted(args.images), args.block_images)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
