"""Section 5: cold start and peak RSS of fresh inference processes, with and without TF."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import onnx

from benchmarks.bench.config import THREADS, Plan
from benchmarks.bench.models import Prepared
from benchmarks.bench.stats import CpuMeter, summary

#: the end of each script: its timings and peak RSS as one JSON line (T0–T2, R1, R2 set above)
_REPORT = """T3 = time.perf_counter()
print(json.dumps({{"import_s": T1 - T0, "load_s": T2 - T1, "predict_s": T3 - T2,
    "internal_s": T3 - T0, "rss_import_mb": R1, "rss_load_mb": R2,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "vmhwm_mb": [int(l.split()[1]) / 1024 for l in open("/proc/self/status")
                 if l.startswith("VmHWM")][0],
    "tf_loaded": "tensorflow" in sys.modules}}))
"""

COLD_ORT = (
    """
import time
T0 = time.perf_counter()
import json, resource, sys
import numpy as np
import anan_onnx
T1 = time.perf_counter()
R1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
sess = anan_onnx.Session({model!r}, threads={threads})
T2 = time.perf_counter()
R2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
x = np.random.default_rng(0).random({shape!r}, dtype=np.float32)
out = sess.predict(x)
"""
    + _REPORT
)

COLD_TF = (
    """
import time
T0 = time.perf_counter()
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import json, resource, sys
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads({threads})
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
T1 = time.perf_counter()
R1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model = keras.models.load_model({model!r}, compile=False)
T2 = time.perf_counter()
R2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
x = np.random.default_rng(0).random({shape!r}, dtype=np.float32)
out = np.asarray(model(x, training=False))
"""
    + _REPORT
)


def cold_once(script: Path) -> dict[str, Any]:
    """Runs one inference process; its own timings plus the wall time seen from outside.

    On Linux a process started straight from this (large) one reports this process's peak
    RSS as its own ``ru_maxrss`` (the high-water mark survives fork + exec), so the child is
    started by a small ``/bin/sh`` that forks it; ``VmHWM`` is recorded as a cross-check.
    """
    command = [sys.executable, str(script)]
    if Path("/bin/sh").exists():  # not exec'd by sh: see the docstring
        command = ["/bin/sh", "-c", '"$0" "$1"; exit $?', *command]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=script.parent)
    external = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} failed: {proc.stderr.strip()[-500:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["external_s"] = external
    return result


def run_cold_start(prep: Prepared, plan: Plan, tmp: Path) -> dict[str, Any]:
    """Section 5: fresh inference processes, alternated, one warm-up each (file cache)."""
    from anan_onnx import AnanParams, convert_model

    anan_path = tmp / "cold.anan.onnx"
    onnx.save(convert_model(prep.base, AnanParams()).anan, anan_path)
    shape = (1, prep.spec.size, prep.spec.size, 3)
    variants: dict[str, Path] = {}
    scripts = {"anan_onnx (no TF), ANAN model": (COLD_ORT, anan_path)}
    if plan.use_tf:
        scripts["TensorFlow + Keras, base model"] = (COLD_TF, prep.source)
    for i, (label, (template, model)) in enumerate(scripts.items()):
        path = tmp / f"cold_{i}.py"
        path.write_text(
            textwrap.dedent(template.format(model=str(model), threads=THREADS, shape=shape))
        )
        variants[label] = path
    for path in variants.values():
        cold_once(path)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in variants}
    meter = CpuMeter()
    for _ in range(plan.cold_reps):
        for label, path in variants.items():
            runs[label].append(cold_once(path))
    result: dict[str, Any] = {"model": prep.spec.name, "batch": 1, "variants": {}}
    result["others_cpu_percent"] = meter.others_percent()
    for label, values in runs.items():
        keys = ("external_s", "internal_s", "import_s", "load_s", "predict_s")
        keys += ("rss_import_mb", "rss_load_mb", "maxrss_mb", "vmhwm_mb")
        entry: dict[str, Any] = {key: summary(v[key] for v in values) for key in keys}
        entry["tf_loaded"] = any(v["tf_loaded"] for v in values)
        result["variants"][label] = entry
    return result
