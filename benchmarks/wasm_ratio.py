"""ANAN/base cost on small CNNs in onnxruntime-web WASM (headless Chromium) and onnxruntime CPU.

    .venv/bin/python -m benchmarks.wasm_ratio [--models mnist,eye64,mnv3s96,bench128]
        [--variants default,unroll,broadcast] [--batches 1,4,16] [--rounds 15] [--cpu]

On small models the ANAN graph's extra nodes, not its arithmetic, set the cost (issue 26):
onnxruntime-web pays a fixed price per node. Models, built in code (no downloads):

* ``mnist``: the ONNX model zoo's MNIST CNN (mnist-8's layers, seeded weights), channels-first
  (NCHW) 1×28×28 input like a PyTorch export: Conv 8/16 5×5, ReLU, MaxPool, Gemm to 10;
* ``eye64``: a Keras CNN on 64×64×3 (an eye-state classifier's size), conv 16/32/64 with
  ReLU and MaxPool, Dense 64, sigmoid, exported through tf2onnx;
* ``mnv3s96``: keras.applications.MobileNetV3Small at 96×96×3, ``weights=None``, 10 classes;
* ``bench128``: the latency benchmark's 128×128 CNN (``benchmarks.bench``, conv 32/64/128).

Each base is converted with ``anan_onnx.convert_model`` and the default parameters under
each ``--variants`` entry: ``default`` (the CLI's default options), ``unroll`` (the k steps
unrolled, ``fold_steps=False``), ``fold`` (``fold_steps=True``), ``broadcast``
(``scaling='broadcast'``); with ``--compare DIR`` also by the anan_onnx of checkout DIR
(default options, in a subprocess), so an old and a new graph are measured in one run;
``floor`` is a stand-in for the least any exact graph adds (:func:`node_floor_stand_in`).
The Keras models are built and exported once, in a subprocess (TensorFlow), and kept in
``--folder``.

WASM: one Chromium page (``anan_onnx.conformance.web``: its server, its harness page, and
examples/web/anan_web.js with ``numThreads = 1``) holds one session per model, each run
for 0.5 s first; Chromium runs with :data:`V8_FLAGS` (the WASM compiled optimised up front,
no tier-up meanwhile). Per round every session runs a block of about 40 ms in a rotated
order, timed as the CPU time of Chromium's renderer threads (``/proc``'s scheduler clock:
wall time on a shared machine is mostly other processes).
The table gives the median per-run time and the median of the per-round ratios to the
base. ``best throughput``: the smallest per-image time over the batches, ANAN's over the
base's. ``--cpu``: the same on onnxruntime CPU in this process, one thread, sequential,
process CPU time. Nodes: each ONNX graph's node count.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mnist", "eye64", "mnv3s96", "bench128")
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "unroll": {"fold_steps": False},
    "fold": {"fold_steps": True},
    "broadcast": {"scaling": "broadcast"},
    "fold+broadcast": {"fold_steps": True, "scaling": "broadcast"},
    "floor": {},  # a stand-in: see node_floor_stand_in
}

#: WASM compiled by V8's optimising compiler up front: no baseline code tiering up in the
#: background while the runs are timed (which took seconds on a busy machine).
V8_FLAGS = "--js-flags=--no-liftoff --no-wasm-tier-up"

#: Builds the Keras models (a subprocess: TensorFlow stays out of this process).
KERAS_BUILD = """
import sys, keras
from anan_onnx.testing import build_base_cnn_keras
name, out = sys.argv[1], sys.argv[2]
keras.utils.set_random_seed(0)
if name == "eye64":
    model = build_base_cnn_keras(64, 3, (16, 32, 64), dense=64, seed=0, name="eye64")
else:
    model = keras.applications.MobileNetV3Small(
        input_shape=(96, 96, 3), weights=None, classes=10, classifier_activation=None)
model.save(out)
"""

# The page's sessions: made once, then run in blocks that Python times (renderer CPU time).
_SETUP_JS = """async ([urls, b64, dims, warmMs]) => {
  const anan = window.anan;
  if (window.wasmBench) for (const s of window.wasmBench.sessions) await s.release();
  const sessions = [];
  try {
    for (const url of urls) sessions.push(await anan.createSession(url, 'wasm'));
    const input = anan.base64ToFloat32(b64);
    window.wasmBench = { sessions, input, dims };
    const once = [];
    for (const s of sessions) {
      // V8 first runs WASM in its baseline compiler and tiers hot functions up in the
      // background (slowly on a busy machine): run each session for warmMs first
      const warm = performance.now();
      while (performance.now() - warm < warmMs) await anan.runFirstOutput(s, input, dims);
      const start = performance.now();
      for (let i = 0; i < 5; i++) await anan.runFirstOutput(s, input, dims);
      once.push((performance.now() - start) / 5);
    }
    return { once };
  } catch (e) {
    return { error: String(e && e.message || e).split('\\n')[0] };
  }
}"""
_BLOCK_JS = """async ([i, n]) => {
  const { sessions, input, dims } = window.wasmBench;
  for (let j = 0; j < n; j++) await window.anan.runFirstOutput(sessions[i], input, dims);
}"""


# --- the models -------------------------------------------------------------------------------


def mnist_cnn(seed: int = 0) -> onnx.ModelProto:
    """The ONNX model zoo's MNIST CNN (mnist-8) with seeded weights, as a PyTorch export writes
    it: NCHW 1×28×28 input, Conv 8 and 16 (5×5, same padding) with ReLU and MaxPool, one
    Gemm to 10 logits; about 0.1 ms a run, so a fixed cost per node shows."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        bound = 1 / np.sqrt(fan_in)
        return numpy_helper.from_array(rng.uniform(-bound, bound, shape).astype(np.float32), name)

    inits = [
        init("conv1.weight", 8, 1, 5, 5),
        init("conv1.bias", 8),
        init("conv2.weight", 16, 8, 5, 5),
        init("conv2.bias", 16),
        init("fc.weight", 10, 256),
        init("fc.bias", 10),
    ]
    node = helper.make_node
    conv = {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]}
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], "conv1", **conv),
        node("Relu", ["c1"], ["r1"], "relu1"),
        node("MaxPool", ["r1"], ["p1"], "pool1", **pool),
        node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], "conv2", **conv),
        node("Relu", ["c2"], ["r2"], "relu2"),
        node("MaxPool", ["r2"], ["p2"], "pool2", kernel_shape=[3, 3], strides=[3, 3]),
        node("Flatten", ["p2"], ["flat"], "flatten", axis=1),
        node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], "fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mnist_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def base_model(name: str, folder: Path) -> Path:
    """The base ONNX model ``name`` (as ``anan_onnx.load_base`` makes it), kept in ``folder``."""
    import anan_onnx

    path = folder / f"{name}.base.onnx"
    if path.is_file():
        return path
    if name == "mnist":
        raw = folder / "mnist.raw.onnx"
        onnx.save(mnist_cnn(), raw)
    elif name == "bench128":
        from benchmarks.bench.config import MODELS as BENCH_MODELS
        from benchmarks.bench.models import build_onnx

        raw = folder / "bench128.raw.onnx"
        onnx.save(build_onnx(BENCH_MODELS["128"], seed=0), raw)
    else:
        raw = folder / f"{name}.keras"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
        command = [sys.executable, "-c", KERAS_BUILD, name, str(raw)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"wasm_ratio: building {name} failed: {done.stderr[-2000:]}")
    onnx.save(anan_onnx.load_base(raw), path)
    return path


def converted(base: Path, variant: str) -> Path:
    """``base`` converted with the default parameters and the ``variant``'s options."""
    import anan_onnx

    out = base.with_name(base.name.replace(".base.onnx", f".{variant}.anan.onnx"))
    options = VARIANTS["fold+broadcast" if variant == "floor" else variant]
    anan = anan_onnx.convert_model(onnx.load(base), anan_onnx.AnanParams(), **options).anan
    onnx.save(node_floor_stand_in(anan) if variant == "floor" else anan, out)
    return out


def node_floor_stand_in(anan: onnx.ModelProto) -> onnx.ModelProto:
    """The node floor of any exact graph (wrong outputs on purpose; unlike
    ``benchmarks/floor_graph.py``, which adds only the extra pass to the base CNN, this
    counts the nodes an exact graph cannot do without): the folded broadcast graph
    with its gains replaced by ``Sign(GlobalAveragePool(C))`` of the unbiased maps C, i.e.
    one node for the kernel means and one for the sign-to-gain pick, the least an exact
    formulation needs on top of the scaling ``g·C + β`` (Mul, Add)."""
    from onnx import helper

    graph = anan.graph
    conv = next(n for n in graph.node if n.name == "anan/conv")
    scale = next(
        n for n in graph.node if n.name.startswith("anan/output") and n.name.endswith("_term0")
    )
    gain = scale.input[0]
    nodes = [
        helper.make_node("GlobalAveragePool", [conv.output[0]], ["floor/mean"], "floor/mean"),
        helper.make_node("Sign", ["floor/mean"], ["floor/gain"], "floor/gain"),
    ]
    scale.input[0] = "floor/gain"
    index = list(graph.node).index(scale)
    for node in reversed(nodes):
        graph.node.insert(index, node)
    del gain
    constants = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in constants]
    return onnx.utils.Extractor(anan).extract_model(inputs, [o.name for o in graph.output])


COMPARE = """
import sys, onnx, anan_onnx
base = onnx.load(sys.argv[1])
onnx.save(anan_onnx.convert_model(base, anan_onnx.AnanParams()).anan, sys.argv[2])
"""


def converted_by(base: Path, checkout: Path) -> Path:
    """``base`` converted with the default options by the anan_onnx of ``checkout``."""
    out = base.with_name(base.name.replace(".base.onnx", ".compare.anan.onnx"))
    env = dict(os.environ, PYTHONPATH=str(checkout))
    command = [sys.executable, "-c", COMPARE, str(base), str(out)]
    subprocess.run(command, check=True, env=env, cwd=str(checkout))
    return out


def input_shape(path: Path, batch: int) -> list[int]:
    dims = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return [batch, *(d.dim_value for d in dims[1:])]


def node_count(path: Path) -> int:
    return len(onnx.load(path, load_external_data=False).graph.node)


# --- the measurements ------------------------------------------------------------------------


Times = dict[str, list[float]]


def renderer_cpu_ns() -> int:
    """CPU time (ns, from the scheduler) of every thread of this process's Chromium renderers:
    the WASM runs on a renderer's main thread, and wall time on a shared machine is noise."""
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or b"--type=renderer" not in (proc / "cmdline").read_bytes():
                continue
            if not _descends_from(proc.name, os.getpid()):
                continue
            for task in (proc / "task").iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except OSError:  # a process or thread that ended meanwhile
            continue
    return total


def _descends_from(pid: str, ancestor: int) -> bool:
    while pid not in ("0", "1"):
        if int(pid) == ancestor:
            return True
        pid = (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()[1]
    return False


def wasm_times(page: Any, urls: dict[str, str], x: np.ndarray, rounds: int) -> Times:
    """Per session: renderer CPU ms per run in each round (one page, interleaved blocks)."""
    data = base64.b64encode(np.ascontiguousarray(x, np.float32).tobytes()).decode("ascii")
    result = page.evaluate(_SETUP_JS, [list(urls.values()), data, list(x.shape), 500])
    if "error" in result:
        raise SystemExit(f"wasm_ratio: onnxruntime-web failed: {result['error']}")
    # one run count for all (blocks of about 40 ms of the slowest session), and the cost of
    # a page call itself (an empty block) taken off: else it weighs on the fastest model
    inner = min(2000, max(1, round(40 / max(max(result["once"]), 0.01))))
    times: Times = {k: [] for k in urls}
    names = list(urls)
    for r in range(rounds):
        start = renderer_cpu_ns()
        page.evaluate(_BLOCK_JS, [0, 0])
        call = renderer_cpu_ns() - start
        for j in range(len(names)):
            i = (j + r) % len(names)
            start = renderer_cpu_ns()
            page.evaluate(_BLOCK_JS, [i, inner])
            times[names[i]].append((renderer_cpu_ns() - start - call) / 1e6 / inner)
    return times


def cpu_times(paths: dict[str, Path], x: np.ndarray, rounds: int) -> Times:
    """Per session: CPU ms per run in each round (one thread, blocks of about 25 ms)."""
    from benchmarks.ort_session import open_session

    settings = dict(threads=1, inter_threads=1, sequential=True, spinning=False, quiet=True)
    sessions = {k: open_session(p, **settings) for k, p in paths.items()}
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    inner = {}
    for key, s in sessions.items():
        for _ in range(3):
            s.run(None, feeds[key])
        start = time.process_time()
        s.run(None, feeds[key])
        inner[key] = min(2000, max(1, int(0.025 / max(time.process_time() - start, 1e-5))))
    times: Times = {k: [] for k in sessions}
    names = list(sessions)
    for r in range(rounds):
        for key in names[r % len(names) :] + names[: r % len(names)]:
            start = time.process_time()
            for _ in range(inner[key]):
                sessions[key].run(None, feeds[key])
            times[key].append((time.process_time() - start) * 1e3 / inner[key])
    return times


def ratios(times: Times) -> dict[str, tuple[float, float]]:
    """Per session: (median ms per run, median of the per-round ratios to ``base``)."""
    base = times["base"]
    return {
        k: (
            statistics.median(v),
            statistics.median(a / b for a, b in zip(v, base, strict=True)),
        )
        for k, v in times.items()
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"of {', '.join(MODELS)}")
    p.add_argument("--variants", default="default", help=f"of {', '.join(VARIANTS)}")
    p.add_argument("--batches", default="1,4", help="batch sizes, e.g. 1,4,16")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--cpu", action="store_true", help="also onnxruntime CPU, one thread")
    p.add_argument("--no-wasm", action="store_true", help="only --cpu")
    p.add_argument("--compare", type=Path, help="also convert with the checkout DIR's anan_onnx")
    p.add_argument("--folder", type=Path, default=ROOT / "out" / "wasm_ratio")
    args = p.parse_args(argv)
    for value, known, what in (
        (args.models, MODELS, "model"),
        (args.variants, tuple(VARIANTS), "variant"),
    ):
        unknown = set(value.split(",")) - set(known)
        if unknown:
            p.error(f"unknown {what} {', '.join(sorted(unknown))}: choose of {', '.join(known)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    runtimes = ([] if args.no_wasm else ["wasm"]) + (["cpu"] if args.cpu else [])
    browser = page = None
    if "wasm" in runtimes:
        from anan_onnx.conformance.web import HARNESS_PATH, Browser

        browser = Browser(extra_args=[V8_FLAGS], builds=("default",))
        page = browser.new_page(f"{HARNESS_PATH}?ort=default")
        page.wait_for_function("window.ananReady === true", timeout=60_000)
    uptime = os.getloadavg()
    print(f"load average at start: {uptime[0]:.2f} {uptime[1]:.2f} {uptime[2]:.2f}")
    print(
        "| model | variant | nodes | runtime | "
        + " | ".join(f"b{b} ms, ratio" for b in batches)
        + " | best throughput |"
    )
    print("|---|---|---|---|" + "---|" * (len(batches) + 1))
    try:
        for name in args.models.split(","):
            base = base_model(name, args.folder)
            paths = {"base": base}
            paths.update({v: converted(base, v) for v in args.variants.split(",")})
            if args.compare:
                paths["compare"] = converted_by(base, args.compare)
            for runtime in runtimes:
                rows = {k: [] for k in paths}
                for batch in batches:
                    x = np.random.default_rng(0).random(input_shape(base, batch), np.float32)
                    if runtime == "wasm":
                        urls = {k: browser.url(p) for k, p in paths.items()}
                        times = wasm_times(page, urls, x, args.rounds)
                    else:
                        times = cpu_times(paths, x, args.rounds)
                    for k, value in ratios(times).items():
                        rows[k].append((batch, *value))
                best_base = min(ms / b for b, ms, _ in rows["base"])
                for k, row in rows.items():
                    cells = " | ".join(f"{ms:.3f}, {r:.3f}" for _, ms, r in row)
                    best = min(ms / b for b, ms, _ in row) / best_base
                    print(
                        f"| {name} | {k} | {node_count(paths[k])} | {runtime} | {cells} | "
                        f"{best:.3f} |"
                    )
                sys.stdout.flush()
    finally:
        if browser is not None:
            browser.close()
    uptime = os.getloadavg()
    print(f"load average at end: {uptime[0]:.2f} {uptime[1]:.2f} {uptime[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
