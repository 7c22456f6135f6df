"""Benchmark: ANAN at the cost of the base CNN (onnxruntime, 2 threads), and the paper's loop.

Measures, in one run on one machine, for the paper's base CNN at 128×128 (3×3 filters) and a
224×224 variant (5×5 filters, one extra conv block), with random but seeded weights:

1. latency of the base CNN and of the ANAN model (default options, ``signal=post``,
   ``reduce=max``, and the default parameters with ``scaling='broadcast'`` or with
   ``fold_steps``) at batch 1 and 64, k = 4 and 8, dynamic and fixed batch, interleaved
   in rounds so that every ANAN/base ratio comes from the same minutes of machine time;
2. an onnxruntime profile of the ANAN graph at batch 64 (where the time goes);
3. the paper's per-image procedure in TensorFlow (eager and ``tf.function``: back up the
   first conv's weights, k forward passes with ``set_weights`` between them, predict,
   restore) and the same literal loop in onnxruntime (``LiteralReference``);
4. conversion time (Keras file → ANAN ONNX);
5. cold start and peak RSS of an inference process without TensorFlow, and of one with it.

It writes a Markdown report (``--out``) with a goals table, and optionally all raw timings
as JSON (``--json``). Everything it builds goes to a temporary directory.

Example:
    .venv/bin/python tools/bench_anan.py --out BENCHMARKS.md --json out/bench.json
    .venv/bin/python tools/bench_anan.py --quick --no-tf --models tiny --out /tmp/b.md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import dataclasses
import datetime
import gc
import hashlib
import importlib.metadata
import io
import json
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[1]
THREADS = 2
#: pause before each timed call of the per-image loops: onnxruntime's own threads (the
#: literal loop's session spins) and TF's go idle meanwhile
LOOP_PAUSE_S = 0.1
OPTIONS: dict[str, dict[str, str]] = {
    "default": {},
    "signal=post": {"signal": "post"},
    "reduce=max": {"reduce": "max"},
    "scaling=broadcast": {},  # default parameters, the plain final scaling (not blocked)
    "fold_steps": {},  # default parameters, the k steps folded into one product
}
#: conversion options (not ANAN parameters) of an option
CONVERT_OPTIONS: dict[str, dict[str, Any]] = {
    "scaling=broadcast": {"scaling": "broadcast"},
    "fold_steps": {"fold_steps": True},
}
MODES = ("dynamic", "fixed")
#: How the sessions' threads wait between runs (see ``Runner``); the goals use the first.
THREADINGS = ("spinning", "no spinning")
GOALS = {
    "fixed64": 1.10,
    "dynamic64": 1.25,
    "batch1": 1.10,
    "heavy64": 1.50,
    "throughput": 20.0,
    "cold_s": 0.5,
    "rss_mb": 150.0,
    "convert_s": 10.0,
}


# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A base CNN: [Conv(k×k) → ReLU → MaxPool 2] per filter count → Flatten → Dense → sigmoid."""

    name: str
    size: int
    kernel: int
    filters: tuple[int, ...]
    dense: int = 128

    def describe(self) -> str:
        """E.g. ``128×128, 3×3, conv 32/64/128, dense 128``."""
        convs = "/".join(str(f) for f in self.filters)
        return (
            f"{self.size}×{self.size}×3, {self.kernel}×{self.kernel} filters, "
            f"conv {convs} (valid, ReLU, maxpool 2), dense {self.dense} ReLU, dense 1 sigmoid"
        )


MODELS = {
    "128": ModelSpec("128", 128, 3, (32, 64, 128)),
    "224": ModelSpec("224", 224, 5, (32, 64, 128, 256)),
    "tiny": ModelSpec("tiny", 32, 3, (32, 64, 128)),
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to measure and how often (full run or ``--quick``)."""

    models: tuple[str, ...]
    batches: tuple[int, ...]
    ks: tuple[int, ...]
    use_tf: bool
    quick: bool
    seed: int
    warmup: int
    min_rounds: int
    max_rounds_b1: int
    max_rounds_big: int
    budget_b1_s: float
    budget_big_s: float
    session_sets_b1: int
    session_sets_big: int
    loop_images: int
    conversion_reps: int
    cold_reps: int
    profile_runs: int


def make_plan(args: argparse.Namespace) -> Plan:
    """Turns the command line into a ``Plan`` (``--quick`` picks small counts)."""
    quick = bool(args.quick)
    models = (
        tuple(args.models.split(",")) if args.models else (("128",) if quick else ("128", "224"))
    )
    ks = tuple(int(k) for k in args.ks.split(",")) if args.ks else ((4,) if quick else (4, 8))
    batches = tuple(int(b) for b in args.batches.split(","))
    return Plan(
        models=models,
        batches=batches,
        ks=ks,
        use_tf=not args.no_tf,
        quick=quick,
        seed=args.seed,
        warmup=1 if quick else 3,
        min_rounds=2 if quick else 5,
        max_rounds_b1=10 if quick else 400,
        max_rounds_big=2 if quick else 30,
        budget_b1_s=0.5 if quick else 6.0,
        budget_big_s=1.0 if quick else 25.0,
        session_sets_b1=2 if quick else 4,
        session_sets_big=2,
        loop_images=2 if quick else 8,
        conversion_reps=1 if quick else 3,
        cold_reps=1 if quick else 5,
        profile_runs=2 if quick else 5,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="bench_anan.py",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 128×128 only, k=4, few reps")
    p.add_argument(
        "--no-tf",
        action="store_true",
        help="never import TensorFlow: build the CNNs directly in ONNX, skip the TF loops "
        "and the TF process",
    )
    p.add_argument(
        "--models", help=f"comma list of {', '.join(MODELS)} (default: 128,224; --quick: 128)"
    )
    p.add_argument("--ks", help="comma list of k (default: 4,8; --quick: 4)")
    p.add_argument("--batches", default="1,64", help="comma list of batch sizes (default: 1,64)")
    p.add_argument(
        "--git-ref",
        help="measure anan_onnx as committed at this ref (e.g. HEAD; extracted with git "
        "archive) instead of the working tree",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default: 0)")
    p.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "BENCHMARKS.md",
        help="report path (default: BENCHMARKS.md at the repository root)",
    )
    p.add_argument("--json", type=Path, help="also write all raw timings here")
    args = p.parse_args(argv)
    for name in (args.models or "").split(","):
        if name and name not in MODELS:
            p.error(f"--models: unknown model {name!r}; choose from {', '.join(MODELS)}")
    for flag, text in (("--ks", args.ks), ("--batches", args.batches)):
        if text and not all(v.strip().isdigit() and int(v) > 0 for v in text.split(",")):
            p.error(f"{flag} must be a comma list of positive integers, got {text!r}")
    return args


# --------------------------------------------------------------------------- statistics


def summary(values: Iterable[float]) -> dict[str, float]:
    """Median, quartiles, min, max and count of a sample."""
    a = np.asarray(list(values), dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
    }


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with 3 significant digits."""
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_spread(s: dict[str, float], scale: float = 1e3) -> str:
    """``median [q1–q3]`` in milliseconds (or another scale)."""
    if scale == 1e3:
        return f"{fmt_ms(s['median'])} [{fmt_ms(s['q1'])}–{fmt_ms(s['q3'])}]"
    return f"{s['median'] * scale:.3g} [{s['q1'] * scale:.3g}–{s['q3'] * scale:.3g}]"


def fmt_ratio(median: float, spread: dict[str, float] | None = None) -> str:
    """A ratio with the IQR of the per-round ratios."""
    text = f"{median:.2f}"
    return f"{text} [{spread['q1']:.2f}–{spread['q3']:.2f}]" if spread else text


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class CpuMeter:
    """How much of the machine's CPU time others used while a measurement ran.

    From ``/proc/stat`` (all busy time, hypervisor steal included) minus this process's
    own CPU time and that of its waited-for children, over wall time × cores. 0 % means the
    machine was ours; 50 % on 2 cores means one core's worth went to other jobs.
    """

    def __init__(self) -> None:
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float]:
        busy = float("nan")
        stat = Path("/proc/stat")
        if stat.exists():
            fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
            idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
            busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return time.perf_counter(), busy, own

    def others_percent(self) -> float:
        """Share of all cores' time used by other processes since construction, in %."""
        wall0, busy0, own0 = self.start
        wall1, busy1, own1 = self._snapshot()
        cores = os.cpu_count() or 1
        return max(0.0, 100.0 * ((busy1 - busy0) - (own1 - own0)) / ((wall1 - wall0) * cores))


# --------------------------------------------------------------------------- models


def import_tf() -> tuple[Any, Any]:
    """Imports TensorFlow and Keras quietly, with 2 intra-op threads and 1 inter-op thread."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL
        import keras
        import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised: the settings of the first call stand
        pass
    return tf, keras


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Sends what native code writes to file descriptor 2 to /dev/null meanwhile."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def build_keras(spec: ModelSpec, seed: int) -> Any:
    """The base CNN in Keras with seeded random weights (and small random biases).

    The ReLU is a separate layer so that the TF loop can watch the first conv's
    pre-activation output (``signal=pre``); tf2onnx makes the same Conv → Relu of it.
    """
    _, keras = import_tf()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(name=f"base_cnn_{spec.name}")
    model.add(keras.Input(shape=(spec.size, spec.size, 3), name="image"))
    for i, filters in enumerate(spec.filters, start=1):
        model.add(layers.Conv2D(filters, spec.kernel, name=f"conv{i}"))
        model.add(layers.Activation("relu", name=f"relu{i}"))
        model.add(layers.MaxPooling2D(2, name=f"pool{i}"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(spec.dense, activation="relu", name="dense"))
    model.add(layers.Dense(1, activation="sigmoid", name="output"))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            bias = rng.normal(0.0, 0.05, weights[1].shape).astype(np.float32)
            layer.set_weights([weights[0], bias])
    return model


def _glorot(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def build_onnx(spec: ModelSpec, seed: int, opset: int = 17) -> onnx.ModelProto:
    """The same base CNN built directly in ONNX (NHWC input like a Keras export), no TF."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Transpose", ["image"], ["x0"], perm=[0, 3, 1, 2], name="to_nchw")]
    inits: list[onnx.TensorProto] = []
    channels, size, x = 3, spec.size, "x0"
    for i, filters in enumerate(spec.filters, start=1):
        k = spec.kernel
        w = _glorot(rng, (filters, channels, k, k), channels * k * k, filters * k * k)
        b = rng.normal(0.0, 0.05, filters).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"conv{i}_w"),
            numpy_helper.from_array(b, f"conv{i}_b"),
        ]
        nodes += [
            helper.make_node(
                "Conv",
                [x, f"conv{i}_w", f"conv{i}_b"],
                [f"c{i}"],
                name=f"conv{i}",
                kernel_shape=[k, k],
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"),
            helper.make_node(
                "MaxPool",
                [f"r{i}"],
                [f"p{i}"],
                name=f"pool{i}",
                kernel_shape=[2, 2],
                strides=[2, 2],
            ),
        ]
        channels, size, x = filters, (size - k + 1) // 2, f"p{i}"
    flat = channels * size * size
    dense = [
        ("dense", _glorot(rng, (flat, spec.dense), flat, spec.dense), spec.dense),
        ("output", _glorot(rng, (spec.dense, 1), spec.dense, 1), 1),
    ]
    nodes += [
        helper.make_node("Transpose", [x], ["nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Flatten", ["nhwc"], ["flat"], name="flatten"),
    ]
    x = "flat"
    for name, w, units in dense:
        b = rng.normal(0.0, 0.05, units).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
        act = "Relu" if name == "dense" else "Sigmoid"
        nodes += [
            helper.make_node("Gemm", [x, f"{name}_w", f"{name}_b"], [f"{name}_z"], name=name),
            helper.make_node(act, [f"{name}_z"], [f"{name}_a"], name=f"{name}_act"),
        ]
        x = f"{name}_a"
    graph = helper.make_graph(
        nodes,
        f"base_cnn_{spec.name}",
        [
            helper.make_tensor_value_info(
                "image", TensorProto.FLOAT, ["batch", spec.size, spec.size, 3]
            )
        ],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def fixed_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of a dynamic-batch model with the batch axis of its input and outputs fixed."""
    fixed = copy.deepcopy(model)
    initializers = {i.name for i in fixed.graph.initializer}
    values = [v for v in fixed.graph.input if v.name not in initializers] + list(fixed.graph.output)
    for value in values:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_value = batch
    return fixed


@dataclasses.dataclass
class Prepared:
    """One base CNN, saved and exported: what every section works on."""

    spec: ModelSpec
    source: Path  # .keras (TF) or .onnx (--no-tf)
    base: onnx.ModelProto  # dynamic batch, as anan_onnx.load_base makes it
    keras_model: Any = None


def prepare_model(spec: ModelSpec, plan: Plan, tmp: Path) -> Prepared:
    """Builds the CNN (Keras, or ONNX with ``--no-tf``), saves it and loads the base ONNX."""
    import anan_onnx

    if plan.use_tf:
        model = build_keras(spec, plan.seed)
        source = tmp / f"base_{spec.name}.keras"
        model.save(source)
    else:
        model = None
        source = tmp / f"base_{spec.name}.onnx"
        onnx.save(build_onnx(spec, plan.seed), source)
    return Prepared(spec, source, anan_onnx.load_base(source), model)


def images(spec: ModelSpec, n: int, seed: int) -> np.ndarray:
    """A seeded batch of NHWC float32 images in [0, 1)."""
    rng = np.random.default_rng(seed)
    return rng.random((n, spec.size, spec.size, 3), dtype=np.float32)


# --------------------------------------------------------------------------- 1. latency


def params_for(k: int, option: str) -> Any:
    """``AnanParams`` with the paper's Cats&Dogs values (μ=2, a=1.05, b=0.30) and k."""
    from anan_onnx import AnanParams

    return AnanParams(k=k, **OPTIONS[option])  # type: ignore[arg-type]


class Runner:
    """An onnxruntime session set up as ``anan_onnx.Session(model, threads=2)`` is (2 intra-op
    threads, sequential executor so 1 inter-op thread, optimisation level all, CPU).

    ``threading`` says how the intra-op threads wait between runs:

    - ``'no spinning'`` (the default here): a pool per session, idle threads sleep
      (``session.intra_op.allow_spinning=0``). onnxruntime's worker threads otherwise spin
      for tens of ms after each run, and with several sessions in one process, as when base
      and ANAN runs alternate, the idle sessions' spinning threads take the 2 cores from the
      session being timed (measured on this machine: the 128×128 base CNN at batch 1 took a
      median 19 ms instead of 3.4 ms with 4 sessions alternating). The price: every op that
      onnxruntime spreads over the threads wakes a sleeping thread (~10–20 µs here).
    - ``'spinning'``: onnxruntime's default, idle threads spin, as in a process serving one
      model; the sessions share one global pool of 2 threads (:func:`use_global_pool`), so
      no idle session's threads compete with the timed one.
    """

    def __init__(self, model: onnx.ModelProto, threading: str = "no spinning") -> None:
        import onnxruntime as ort

        options = session_options(threading)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """All outputs for a batch in the model's layout."""
        return self.session.run(None, {self.input_name: batch})


def session_options(threading: str) -> Any:
    """onnxruntime session options with the threads of ``threading`` (see ``Runner``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threading == "spinning":
        options.use_per_session_threads = False  # the global pool's 2 threads
    else:
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def make_session(model: onnx.ModelProto, threading: str = "no spinning") -> Runner:
    """A ``Runner`` (2 intra-op threads) for ``model``; see ``Runner`` for ``threading``."""
    return Runner(model, threading)


def global_pool_available() -> bool:
    """Whether this onnxruntime can give a process one global thread pool."""
    import onnxruntime.capi._pybind_state as ort_state

    return hasattr(ort_state, "set_global_thread_pool_sizes")


def use_global_pool() -> bool:
    """Gives this process one global onnxruntime pool of 2 intra-op threads (spinning, the
    default), for ``threading='spinning'``. After it, sessions with their own pools are
    refused: call it once the ``'no spinning'`` sections are done. False if this
    onnxruntime cannot."""
    import onnxruntime.capi._pybind_state as ort_state

    if not global_pool_available():
        return False
    ort_state.set_global_thread_pool_sizes(THREADS, 1)
    return True


def interleave(
    runners: dict[str, Callable[[], object]],
    *,
    warmup: int,
    min_rounds: int,
    max_rounds: int,
    budget_s: float,
) -> dict[str, list[float]]:
    """Times each runner in rounds (rotating order), after ``warmup`` warm-up rounds.

    The number of rounds fills ``budget_s`` (estimated from the last warm-up round),
    clamped to [min_rounds, max_rounds]. Garbage collection is off while timing.
    """
    names = list(runners)
    round_s = 0.0
    for _ in range(max(warmup, 1)):
        start = time.perf_counter()
        for name in names:
            runners[name]()
        round_s = time.perf_counter() - start
    rounds = int(np.clip(budget_s / max(round_s, 1e-9), min_rounds, max_rounds))
    times: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                start = time.perf_counter()
                runners[name]()
                times[name].append(time.perf_counter() - start)
    finally:
        gc.enable()
    return times


@dataclasses.dataclass(frozen=True)
class SessionSet:
    """One set of sessions to time in a fresh process (see :func:`time_session_set`).

    Attributes:
        paths: model name → ONNX file, in the order the rounds run them.
        creation_order: the order the sessions are created in (rotated from set to set:
            the first session created in a process may land differently from the others).
        spec, batch, seed: the batch to run, made with :func:`images` in the process.
        threading: ``'spinning'`` or ``'no spinning'`` (see ``Runner``).
        warmup, min_rounds, max_rounds, budget_s: as for :func:`interleave`.
    """

    paths: dict[str, str]
    creation_order: list[str]
    spec: ModelSpec
    batch: int
    seed: int
    threading: str
    warmup: int
    min_rounds: int
    max_rounds: int
    budget_s: float


def time_session_set(job: SessionSet) -> dict[str, list[float]]:
    """Creates the sessions of ``job`` and times them with :func:`interleave`.

    Runs in a process of its own (:func:`in_fresh_process`): there, ``'spinning'`` can have
    onnxruntime's global pool whatever the other sets use, and the sessions' memory is not
    laid out by the sessions before them."""
    if job.threading == "spinning" and not use_global_pool():
        raise RuntimeError("this onnxruntime has no global thread pool for 'spinning'")
    models = {name: onnx.load(path) for name, path in job.paths.items()}
    sessions = {name: make_session(models[name], job.threading) for name in job.creation_order}
    x = images(job.spec, job.batch, job.seed)
    runners = {name: (lambda s=sessions[name]: s.run(x)) for name in job.paths}
    return interleave(
        runners,
        warmup=job.warmup,
        min_rounds=job.min_rounds,
        max_rounds=job.max_rounds,
        budget_s=job.budget_s,
    )


def in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a newly spawned Python process (nothing inherited but sys.path)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


@dataclasses.dataclass
class LatencyGroup:
    """One (model, batch, mode, k): the base CNN and every ANAN option, saved as files."""

    spec: ModelSpec
    batch: int
    mode: str
    k: int
    paths: dict[str, str]  # "base" and each of OPTIONS → ONNX file
    sets: int  # sets of sessions (processes) to time it in

    def label(self) -> str:
        return f"{self.spec.name} b{self.batch} {self.mode} k={self.k}"


def prepare_latency(preps: list[Prepared], plan: Plan, tmp: Path) -> list[LatencyGroup]:
    """Converts the models of every (model, batch, mode, k) group once, for both threadings."""
    from anan_onnx import convert_model

    groups = []
    for prep in preps:
        for batch in plan.batches:
            for mode in MODES:
                fixed = batch if mode == "fixed" else None
                base = prep.base if fixed is None else fixed_batch(prep.base, batch)
                for k in plan.ks:
                    folder = tmp / f"latency_{prep.spec.name}_{batch}_{mode}_{k}"
                    folder.mkdir()
                    models = {"base": base}
                    for option in OPTIONS:
                        models[option] = convert_model(
                            prep.base,
                            params_for(k, option),
                            batch=fixed,
                            **CONVERT_OPTIONS.get(option, {}),
                        ).anan
                    paths = {name: str(folder / f"model{i}.onnx") for i, name in enumerate(models)}
                    for name, model in models.items():
                        onnx.save(model, paths[name])
                    sets = plan.session_sets_big if batch > 1 else plan.session_sets_b1
                    groups.append(LatencyGroup(prep.spec, batch, mode, k, paths, sets))
    return groups


def run_latency(
    groups: list[LatencyGroup], plan: Plan, log: Callable[[str], None], threading: str
) -> list[dict]:
    """Section 1: base vs ANAN (every option) for every group, interleaved in rounds.

    Each group's time budget is split among its ``sets`` sets of sessions (one per model
    each), every set in a fresh process (:func:`time_session_set`): where a session's
    buffers land in memory moves its times for its whole life, and sessions created again
    in the same process land alike, so one set would make each ratio a draw of that
    placement. The sets run in passes, pass i timing set i of every group, so that a
    stretch of minutes when other jobs press on the machine's memory and caches (slowing
    ANAN more than the base CNN, apparently its passes over the first layer's maps) falls
    on one set of many groups instead of on every set of one group."""
    times = [{name: [] for name in g.paths} for g in groups]
    set_ratios = [{name: [] for name in g.paths} for g in groups]
    busy = [[0.0, 0.0] for _ in groups]  # others' CPU % × seconds, seconds
    for i in range(max(g.sets for g in groups)):
        start = time.perf_counter()
        for g, got_all, ratios, load in zip(groups, times, set_ratios, busy, strict=True):
            if i >= g.sets:
                continue
            meter, began = CpuMeter(), time.perf_counter()
            got = in_fresh_process(time_session_set, session_set(g, i, plan, threading))
            seconds = time.perf_counter() - began
            load[0] += meter.others_percent() * seconds
            load[1] += seconds
            for name in g.paths:
                got_all[name] += got[name]
                ratios[name].append(float(np.median(got[name]) / np.median(got["base"])))
        log(f"latency ({threading}) pass {i + 1}: {time.perf_counter() - start:.0f} s")
    rows = []
    for g, got_all, ratios, load in zip(groups, times, set_ratios, busy, strict=True):
        group = latency_rows(g, got_all, ratios, load[0] / max(load[1], 1e-9), threading)
        summary_ = ", ".join(f"{r['option']} {r['ratio']:.2f}" for r in group)
        base_ms = fmt_ms(group[0]["base_s"]["median"])
        log(f"latency ({threading}) {g.label()}: base {base_ms} ms; {summary_}")
        rows += group
    return rows


def session_set(group: LatencyGroup, index: int, plan: Plan, threading: str) -> SessionSet:
    """Set ``index`` of ``group``: its share of the budget, sessions created in an order
    rotated by ``index``."""
    big = group.batch > 1
    return SessionSet(
        paths=group.paths,
        creation_order=rotated(list(group.paths), index),
        spec=group.spec,
        batch=group.batch,
        seed=plan.seed + group.batch,
        threading=threading,
        # a fresh process still grows its buffers in the first runs of a large batch
        warmup=2 if big else plan.warmup,
        min_rounds=-(-plan.min_rounds // group.sets),
        max_rounds=(plan.max_rounds_big if big else plan.max_rounds_b1) // group.sets,
        budget_s=(plan.budget_big_s if big else plan.budget_b1_s) / group.sets,
    )


def rotated(names: list[str], index: int) -> list[str]:
    """``names`` starting from entry ``index`` (cyclically): the creation order of set ``index``."""
    return names[index % len(names) :] + names[: index % len(names)]


def latency_rows(
    group: LatencyGroup,
    times: dict[str, list[float]],
    set_ratios: dict[str, list[float]],
    others_percent: float,
    threading: str,
) -> list[dict[str, Any]]:
    """One result row per ANAN option of ``group``."""
    base = np.asarray(times["base"])
    rows = []
    for option in OPTIONS:
        anan = np.asarray(times[option])
        rows.append(
            {
                "model": group.spec.name,
                "batch": group.batch,
                "mode": group.mode,
                "k": group.k,
                "option": option,
                "threading": threading,
                "session_sets": group.sets,
                "rounds": len(base),
                "base_s": summary(base),
                "anan_s": summary(anan),
                "ratio": float(np.median(anan) / np.median(base)),
                "ratio_rounds": summary(anan / base),
                "ratio_min": float(anan.min() / base.min()),
                "set_ratios": set_ratios[option],
                "loadavg_1min": os.getloadavg()[0],
                "others_cpu_percent": others_percent,
                "base_raw_s": base.tolist(),
                "anan_raw_s": anan.tolist(),
            }
        )
    return rows


# --------------------------------------------------------------------------- 2. profile


def profile_model(
    model: onnx.ModelProto, x: np.ndarray, warmup: int, runs: int, prefix: Path, threading: str
) -> dict[str, Any]:
    """Runs ``model`` with onnxruntime's profiler; per-node and per-op-type ms per run."""
    import onnxruntime as ort

    options = session_options(threading)
    options.enable_profiling = True
    options.profile_file_prefix = str(prefix)
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feeds = {session.get_inputs()[0].name: x}
    for _ in range(warmup + runs):
        session.run(None, feeds)
    path = Path(session.end_profiling())
    events = json.loads(path.read_text())
    return summarise_profile(events, runs)


def summarise_profile(events: list[dict[str, Any]], runs: int) -> dict[str, Any]:
    """Kernel time per node and per op type over the last ``runs`` model runs (ms per run)."""
    model_runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
        key=lambda e: e["ts"],
    )[-runs:]
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs]
    nodes: dict[str, dict[str, Any]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if not any(lo <= e["ts"] <= hi for lo, hi in windows):
            continue
        node = name[: -len("_kernel_time")]
        entry = nodes.setdefault(node, {"op": e.get("args", {}).get("op_name", "?"), "us": 0.0})
        entry["us"] += e["dur"]
    n = max(len(windows), 1)
    run_ms = float(np.median([e["dur"] for e in model_runs])) / 1e3 if model_runs else 0.0
    node_rows = sorted(
        ({"node": k, "op": v["op"], "ms": v["us"] / n / 1e3} for k, v in nodes.items()),
        key=lambda r: -r["ms"],
    )
    ops: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in node_rows:
        ops[row["op"]] = ops.get(row["op"], 0.0) + row["ms"]
        counts[row["op"]] = counts.get(row["op"], 0) + 1
    anan_ms = sum(r["ms"] for r in node_rows if r["node"].startswith("anan/"))
    return {
        "runs": len(windows),
        "run_ms": run_ms,
        "kernel_ms": sum(r["ms"] for r in node_rows),
        "anan_nodes_ms": anan_ms,
        "nodes": node_rows,
        "ops": sorted(
            ({"op": k, "ms": v, "nodes": counts[k]} for k, v in ops.items()),
            key=lambda r: -r["ms"],
        ),
    }


def run_profiles(
    preps: list[Prepared], plan: Plan, tmp: Path, threading: str
) -> list[dict[str, Any]]:
    """Section 2: profiles of base and ANAN (first k) for the first model: at the largest
    batch (default options dynamic and fixed, ``signal=post``), and at batch 1."""
    from anan_onnx import convert_model

    prep, big, k = preps[0], max(plan.batches), plan.ks[0]
    configs = [("base", "dynamic", None, big), ("default", "dynamic", "default", big)]
    if not plan.quick:
        configs += [("default", "fixed", "default", big)]
        configs += [("signal=post", "dynamic", "signal=post", big)]
        if big > 1:
            configs += [("base", "dynamic", None, 1), ("default", "dynamic", "default", 1)]
    results = []
    for label, mode, option, batch in configs:
        x = images(prep.spec, batch, plan.seed + batch)
        if option is None:
            model = prep.base
        else:
            fixed = batch if mode == "fixed" else None
            model = convert_model(prep.base, params_for(k, option), batch=fixed).anan
        runs = plan.profile_runs if batch > 1 else 10 * plan.profile_runs
        prefix = tmp / f"profile_{label}_{mode}_{batch}".replace("=", "_")
        result = profile_model(model, x, warmup=2, runs=runs, prefix=prefix, threading=threading)
        result.update(
            model=prep.spec.name, batch=batch, k=k, label=label, mode=mode, threading=threading
        )
        results.append(result)
        gc.collect()
    return results


# --------------------------------------------------------------------------- 3. per-image loops


def paper_procedure(
    conv: Any, watch: Callable, predict: Callable, params: Any, x: np.ndarray
) -> np.ndarray:
    """The paper's procedure for one image (1×H×W×C) in Keras, rule as in the spec.

    Back up the conv's weights; k times: set the weights, run the network, take the kernel
    means of the conv output, count, scale the kernels; then predict and restore.
    """
    w0, bias = conv.get_weights()  # 1. back up (kernel is kh × kw × C × O)
    w = w0.copy()
    r = np.zeros(w.shape[-1])
    for _ in range(params.k):  # 2. present the image k times
        conv.set_weights([w, bias])
        y, _ = watch(x)
        s = np.asarray(y)[0].mean(axis=(0, 1), dtype=np.float64)
        u = np.where(s > 0, 1, -1)  # eq. 1
        r = np.where(np.abs(r) == params.mu, r, r + u)  # eq. 2, absorbing
        m = np.where(r == params.mu, params.a, np.where(r == -params.mu, 1 - params.b, 1.0))
        w = w * m.astype(np.float32)  # eq. 3, multiplicative
    conv.set_weights([w, bias])
    out = np.asarray(predict(x))  # 3. predict with the modulated weights
    conv.set_weights([w0, bias])  # 4. restore
    return out


def tf_callables(model: Any, shape: tuple[int, ...], compiled: bool) -> tuple[Callable, Callable]:
    """(watch, predict): the network returning (first conv output, prediction), and predict."""
    tf, keras = import_tf()
    conv_out = model.get_layer("conv1").output
    watch_model = keras.Model(model.inputs[0], [conv_out, model.outputs[0]])

    def watch(x):
        return watch_model(x, training=False)

    def predict(x):
        return model(x, training=False)

    if not compiled:
        return watch, predict
    spec = [tf.TensorSpec((1, *shape[1:]), tf.float32)]
    return tf.function(watch, input_signature=spec), tf.function(predict, input_signature=spec)


def run_loops(preps: list[Prepared], plan: Plan, log: Callable[[str], None]) -> list[dict]:
    """Section 3: TF eager / tf.function loops and the ORT literal loop, per model and k,
    interleaved image by image with ANAN runs (batch 1, and the largest batch)."""
    rows = []
    big = max(plan.batches)
    for prep in preps:
        x = images(prep.spec, plan.loop_images + 1, plan.seed + 7)
        xb = images(prep.spec, big, plan.seed + big) if big > 1 else None
        for k in plan.ks:
            row = loop_row(prep, plan, k, x, xb)
            rows.append(row)
            timed = [(key[:-2], v) for key, v in row.items() if isinstance(v, dict)]
            log(
                f"loops {prep.spec.name} k={k}: "
                + ", ".join(f"{name} {fmt_ms(v['median'])} ms/img" for name, v in timed)
            )
            gc.collect()
    return rows


def loop_procedures(
    prep: Prepared, plan: Plan, params: Any, conversion: Any, x: np.ndarray
) -> dict[str, Callable[[np.ndarray], Any]]:
    """The per-image procedures: ORT literal loop and, with TF, the eager and compiled loops."""
    from anan_onnx import LiteralReference

    ref = LiteralReference(conversion.base, conversion.target_layer, params)
    procs: dict[str, Callable[[np.ndarray], Any]] = {
        "ort_literal": lambda im: ref.run(im).outputs[0]
    }
    if plan.use_tf:
        conv = prep.keras_model.get_layer("conv1")
        for label, compiled in (("tf_eager", False), ("tf_function", True)):
            watch, predict = tf_callables(prep.keras_model, x.shape, compiled)
            procs[label] = lambda im, w=watch, p=predict: paper_procedure(conv, w, p, params, im)
    return procs


def loop_row(
    prep: Prepared, plan: Plan, k: int, x: np.ndarray, xb: np.ndarray | None
) -> dict[str, Any]:
    """Per-image seconds of each procedure and of ANAN (default options, dynamic batch).

    ``x[0]`` is the warm-up image. Then, image by image, every procedure runs once (rotating
    order) next to one ANAN run at batch 1 and one at ``len(xb)`` (its time / batch size),
    so that throughput ratios compare runs taken seconds apart.
    """
    from anan_onnx import convert_model

    params = params_for(k, "default")
    conversion = convert_model(prep.base, params)
    session = make_session(conversion.anan)
    procs = loop_procedures(prep, plan, params, conversion, x)
    runners: dict[str, Callable[[int], Any]] = {
        name: (lambda i, f=f: f(x[i : i + 1])) for name, f in procs.items()
    }
    runners["anan_b1"] = lambda i: session.run(x[i : i + 1])[0]
    if xb is not None:
        runners["anan_big"] = lambda i: session.run(xb)[0]
        # the base CNN alone at the large batch: no ANAN model can beat its throughput
        base_session = make_session(prep.base)
        runners["base_big"] = lambda i: base_session.run(xb)[0]
    for run in runners.values():
        run(0)
    meter = CpuMeter()
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    names = list(runners)
    for i in range(1, len(x)):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            time.sleep(LOOP_PAUSE_S)  # let the previous procedure's threads stop spinning
            start = time.perf_counter()
            out = runners[name](i)
            times[name].append(time.perf_counter() - start)
            outputs[name].append(np.asarray(out).reshape(-1)[:1])
    row: dict[str, Any] = {"model": prep.spec.name, "k": k, "images": len(x) - 1}
    row["others_cpu_percent"] = meter.others_percent()
    reference = np.concatenate(outputs["anan_b1"])
    for name in names:
        scale = len(xb) if name in ("anan_big", "base_big") and xb is not None else 1
        row[f"{name}_s"] = summary(np.asarray(times[name]) / scale)
        if name in procs:
            row[f"{name}_maxdiff"] = float(np.abs(np.concatenate(outputs[name]) - reference).max())
    if xb is not None:
        row["anan_batch"] = len(xb)
    return row


# --------------------------------------------------------------------------- 4. conversion


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


# --------------------------------------------------------------------------- 5. cold start

COLD_ORT = """
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
T3 = time.perf_counter()
print(json.dumps({{"import_s": T1 - T0, "load_s": T2 - T1, "predict_s": T3 - T2,
    "internal_s": T3 - T0, "rss_import_mb": R1, "rss_load_mb": R2,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "vmhwm_mb": [int(l.split()[1]) / 1024 for l in open("/proc/self/status")
                 if l.startswith("VmHWM")][0],
    "tf_loaded": "tensorflow" in sys.modules}}))
"""

COLD_TF = """
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
T3 = time.perf_counter()
print(json.dumps({{"import_s": T1 - T0, "load_s": T2 - T1, "predict_s": T3 - T2,
    "internal_s": T3 - T0, "rss_import_mb": R1, "rss_load_mb": R2,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "vmhwm_mb": [int(l.split()[1]) / 1024 for l in open("/proc/self/status")
                 if l.startswith("VmHWM")][0],
    "tf_loaded": "tensorflow" in sys.modules}}))
"""


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


# --------------------------------------------------------------------------- environment


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, RAM, load average."""
    cpu = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem: dict[str, float] = {}
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                mem[key] = int(value.split()[0]) / 1024**2
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "ram_gib": round(mem.get("MemTotal", 0.0), 1),
        "available_gib_at_start": round(mem.get("MemAvailable", 0.0), 1),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
    }


def versions(use_tf: bool) -> dict[str, str]:
    """Versions of python and the libraries involved (TF read from metadata, not imported)."""
    result = {"python": platform.python_version()}
    names = ["numpy", "onnxruntime", "onnx", "onnx-ir", "anan-onnx"]
    names += ["tensorflow", "tensorflow-cpu", "keras", "tf2onnx"]
    for name in names:
        try:
            result[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    if "tensorflow" not in result and "tensorflow-cpu" in result:
        result["tensorflow"] = result.pop("tensorflow-cpu")
    result.pop("tensorflow-cpu", None)
    if not use_tf:
        result["note"] = "--no-tf: TensorFlow not imported"
    return result


def git(*args: str) -> str:
    """Output of a git command in the repository ('?' if it fails)."""
    proc = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "?"


def use_git_ref(ref: str, tmp: Path) -> str:
    """Puts ``anan_onnx`` as committed at ``ref`` first on the import path (this process and
    its children); returns the full commit id. Must run before anything imports anan_onnx."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    if sha == "?":
        raise SystemExit(f"bench_anan.py: error: --git-ref {ref!r} is not a commit")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", sha, "anan_onnx"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    code = tmp / "code"
    code.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(code, filter="data")
        else:
            tar.extractall(code)  # our own repository's archive
    sys.path.insert(0, str(code))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(code), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    import anan_onnx

    assert Path(anan_onnx.__file__).is_relative_to(code), anan_onnx.__file__
    return sha


def code_state(ref_sha: str | None) -> dict[str, str]:
    """Which anan_onnx was measured: a commit (``--git-ref``) or the working tree, with the
    last commit of the rewrite and, for the working tree, its uncommitted changes."""
    import anan_onnx

    package = Path(anan_onnx.__file__).parent
    rewrite = package / "_rewrite.py"
    digest = hashlib.sha256(rewrite.read_bytes()).hexdigest()[:12] if rewrite.exists() else "?"
    at = ref_sha or "HEAD"
    state = {
        "head": git("log", "-1", "--format=%h %cI %s"),
        "measured": f"commit {ref_sha[:7]} (git archive)" if ref_sha else "working tree",
        "package_dir": str(package),
        "rewrite_commit": git("log", "-1", "--format=%h %cI %s", at, "--", "anan_onnx/_rewrite.py"),
        "rewrite_sha256": digest,
    }
    if not ref_sha:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "anan_onnx"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout
        state["anan_onnx_modified"] = ", ".join(line[3:] for line in dirty.splitlines()) or "no"
    return state


def command_line() -> str:
    """The command that produced the report, relative to the repository root if possible."""
    exe = Path(sys.executable)
    python = str(exe.relative_to(REPO_ROOT)) if exe.is_relative_to(REPO_ROOT) else "python"
    script = Path(__file__).resolve()
    tool = str(script.relative_to(REPO_ROOT)) if script.is_relative_to(REPO_ROOT) else str(script)
    return shlex.join([python, tool, *sys.argv[1:]])


# --------------------------------------------------------------------------- goals


def _pick(rows: list[dict], **where: object) -> list[dict]:
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _matching(rows: list[dict], **where: object) -> list[dict]:
    return [
        r
        for r in rows
        if all(r[k] in v if isinstance(v, tuple) else r[k] == v for k, v in where.items())
    ]


def _latency_goal(rows: list[dict], goal: float, label: str, **where: object) -> dict | None:
    """The worst ratio among the matching latency rows of the first threading measured
    (``THREADINGS``), against ``goal``; the other threading's worst is added to the detail."""
    measured = [t for t in THREADINGS if _matching(rows, threading=t, **where)]
    if not measured:
        return None
    found = _matching(rows, threading=measured[0], **where)
    worst = max(found, key=lambda r: r["ratio"])
    detail = "; ".join(
        f"{r['model']} k{r['k']}{' ' + r['mode'][:3] if 'mode' not in where else ''}"
        f"{' ' + r['option'] if r['option'] != 'default' else ''}: {r['ratio']:.2f}"
        for r in found
    )
    detail = f"threads {measured[0]}: {detail}"
    for other in measured[1:]:
        ratio = max(r["ratio"] for r in _matching(rows, threading=other, **where))
        detail += f" (threads {other}: worst {ratio:.2f})"
    return {
        "figure": label,
        "goal": f"≤ {goal:.2f}",
        "value": f"{worst['ratio']:.2f} (worst)",
        "ok": worst["ratio"] <= goal,
        "detail": detail,
    }


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals table, each figure taken as the worst case over models and k."""
    rows = results["latency"]
    big = max((r["batch"] for r in rows), default=1)
    out = [
        _latency_goal(
            rows,
            GOALS["fixed64"],
            f"ANAN / base latency, batch {big}, fixed batch",
            batch=big,
            mode="fixed",
            option="default",
        ),
        _latency_goal(
            rows,
            GOALS["dynamic64"],
            f"ANAN / base latency, batch {big}, dynamic batch",
            batch=big,
            mode="dynamic",
            option="default",
        ),
        _latency_goal(
            rows,
            GOALS["batch1"],
            "ANAN / base latency, batch 1 (fixed and dynamic)",
            batch=1,
            option="default",
        ),
        _latency_goal(
            rows,
            GOALS["heavy64"],
            f"ANAN / base, batch {big}, signal=post or reduce=max",
            batch=big,
            option=("signal=post", "reduce=max"),
        ),
    ]
    loops = [r for r in results["loops"] if "tf_function_s" in r and "anan_big_s" in r]
    if loops:
        ratios = [(r, r["tf_function_s"]["median"] / r["anan_big_s"]["median"]) for r in loops]
        worst = min(ratios, key=lambda t: t[1])
        out.append(
            {
                "figure": "ANAN throughput / naive tf.function loop",
                "goal": f"≥ {GOALS['throughput']:.0f}×",
                "value": f"{worst[1]:.1f}× (worst)",
                "ok": worst[1] >= GOALS["throughput"],
                "detail": "; ".join(
                    f"{r['model']} k{r['k']}: {v:.1f}× (base CNN alone: "
                    f"{r['tf_function_s']['median'] / r['base_big_s']['median']:.1f}×)"
                    for r, v in ratios
                )
                + f" (ANAN default options, dynamic batch {loops[0]['anan_batch']}, "
                "run image by image alongside the loop)",
            }
        )
    cold = results.get("cold_start")
    if cold:
        entry = cold["variants"]["anan_onnx (no TF), ANAN model"]
        t, rss = entry["external_s"]["median"], entry["maxrss_mb"]["median"]
        out.append(
            {
                "figure": "inference process without TF: cold start, peak RSS",
                "goal": f"≤ {GOALS['cold_s']} s, ≤ {GOALS['rss_mb']:.0f} MB",
                "value": f"{t:.2f} s, {rss:.0f} MB",
                "ok": t <= GOALS["cold_s"] and rss <= GOALS["rss_mb"],
                "detail": f"wall time of the process seen from outside; inside: "
                f"{entry['internal_s']['median']:.2f} s; batch 1, {cold['model']} model",
            }
        )
    conv = results.get("conversion")
    if conv:
        t = conv["warm_s"]["median"]
        detail = f"convert_file {conv['source']} → ANAN ONNX, median of {conv['warm_s']['n']}"
        if "fresh_process_s" in conv:
            detail += f"; fresh CLI process incl. TF import: {conv['fresh_process_s']:.1f} s"
        out.append(
            {
                "figure": f"conversion of the {conv['model']} model",
                "goal": f"≤ {GOALS['convert_s']:.0f} s",
                "value": f"{t:.1f} s",
                "ok": t <= GOALS["convert_s"],
                "detail": detail,
            }
        )
    return [g for g in out if g is not None]


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    """The Markdown report."""
    parts = [report_header(results), report_goals(results), report_method(results)]
    parts += [report_latency(results), report_profile(results), report_loops(results)]
    parts += [report_conversion(results), report_cold(results)]
    return "\n\n".join(p for p in parts if p) + "\n"


def report_header(results: dict[str, Any]) -> str:
    """Title, command, date, machine, versions, code state."""
    m, v, c = results["machine"], results["versions"], results["code"]
    lines = [
        "# Benchmarks: ANAN at the cost of the base CNN",
        "",
        f"Produced by `{results['command']}` (run from the repository root) on "
        f"{results['date']}; wall time {results['wall_s'] / 60:.1f} min.",
        "",
        f"- Machine: {m['cores']} cores ({m['usable_cores']} usable), {m['cpu']}, "
        f"{m['ram_gib']} GiB RAM ({m['available_gib_at_start']} GiB available at start), "
        f"{m['platform']}; load average at start {fmt_load(m['loadavg_at_start'])}, "
        f"at end {fmt_load(results['loadavg_at_end'])} (other jobs share this machine).",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Code measured: anan_onnx from the {c['measured']}; repository HEAD {c['head']}; "
        f"`anan_onnx/_rewrite.py` as of {c['rewrite_commit']} (sha256 {c['rewrite_sha256']})"
        + (
            f"; uncommitted changes in anan_onnx/: {c['anan_onnx_modified']}."
            if "anan_onnx_modified" in c
            else "."
        ),
        "- Models: " + "; ".join(f"**{s['name']}**: {s['text']}" for s in results["models"]),
    ]
    return "\n".join(lines)


def fmt_load(load: Sequence[float]) -> str:
    """A load-average triple."""
    return "/".join(f"{x:.2f}" for x in load)


def report_goals(results: dict[str, Any]) -> str:
    """The goals table (✓/✗)."""
    rows = [
        (g["figure"], g["goal"], g["value"], "✓" if g["ok"] else "✗", g["detail"])
        for g in results["goals"]
    ]
    return "## Goals\n\n" + md_table(["figure", "goal", "measured", "", "details"], rows)


def report_method(results: dict[str, Any]) -> str:
    """How the numbers were taken."""
    plan = results["plan"]
    return textwrap.dedent(f"""\
        ## Method

        All onnxruntime sessions use {THREADS} intra-op threads (sequential executor, i.e. one
        inter-op thread), graph optimisation level `all`, CPU provider, as
        `anan_onnx.Session(model, threads={THREADS})` sets them up. The latency is measured
        twice, with the threads waiting between runs in two ways ("threads" in the tables):

        - **spinning**: onnxruntime's default, idle threads spin, as in a process serving
          one model. Here the sessions share one global pool of {THREADS} threads
          (`set_global_thread_pool_sizes`, `use_per_session_threads=False`): with a pool
          per session, the idle sessions' spinning threads took the 2 cores from the one
          being timed (the 128×128 base at batch 1: median 19 ms with 4 sessions
          alternating vs 3.4 ms without spinning, on this machine).
        - **no spinning**: a pool per session with `session.intra_op.allow_spinning=0`, as
          for a deployment that turns spinning off to share its cores. Every op that
          onnxruntime spreads over the threads then wakes a sleeping thread (~10–20 µs on
          this machine), which weighs on small ops at batch 1.

        The goals table uses the first (onnxruntime's default) and gives the worst case of
        the second beside it. The latency sessions run in processes of their own (below);
        in the benchmark's own process the per-image loops, the conversion and the cold
        start run with spinning off, then the profiles in a global pool, spinning.
        TensorFlow is set to {THREADS} intra-op / 1 inter-op threads.

        Latency is the wall time of one `run` on a seeded random batch. For each (model,
        batch, dynamic/fixed, k) the base CNN and five ANAN variants (default options,
        `signal=post`, `reduce=max`; μ=2, a=1.05, b=0.30; and the default parameters
        converted with `scaling="broadcast"`, the final scaling as plain broadcast ops
        instead of onnxruntime's blocked layout, or with `fold_steps=True`, the k steps
        as one product for the final gains) run in rounds, each round running
        every model once in a rotating order, after {plan["warmup"]} warm-up round(s) in each
        set (2 at larger batches, where a fresh process still grows its buffers); the
        number of rounds fills a time budget ({plan["budget_b1_s"]:g} s at batch 1,
        {plan["budget_big_s"]:g} s at larger batches), clamped to
        {plan["min_rounds"]}–{plan["max_rounds_b1"]} rounds at batch 1 and
        {plan["min_rounds"]}–{plan["max_rounds_big"]} at larger batches. The budget is split
        among {plan["session_sets_b1"]} (batch 1) or {plan["session_sets_big"]} (larger
        batches) sets of sessions, each set created in a freshly spawned process (in a
        rotated order), as a deployment creates its session in a process of its own: where
        a session's buffers land in memory moves its times for its whole life (three
        sessions of the same base CNN in one process: up to 5 % apart at batch 1 on this
        machine), and sessions created again in the same process land alike (the ANAN /
        base ratio of the 128 model at batch 1, k = 4, spinning: 1.04–1.13, median 1.11,
        over 6 sets in one process; 1.04–1.11, median 1.04, over 6 processes, each
        with one set), so one set would make
        each ratio a draw of that placement. The sets run in passes, pass i timing set i
        of every group, so that minutes when other jobs press on the machine's memory and
        caches (they slow ANAN more than the base CNN, apparently its passes over the
        first layer's maps: a whole group at 1.13–1.16 while the others were at 1.05–1.08, in an
        earlier version that ran a group's sets back to back) fall on one set of many
        groups rather than on every set of one. "per process" gives each set's ratio of
        medians, in pass order. Times are medians over all sets
        with the interquartile range in brackets; a ratio is median(ANAN)/median(base) with
        the IQR of the per-round ratios (base and ANAN run in the same round, seconds apart).
        "fixed" means `convert_model(..., batch=N)` for ANAN and the base CNN's input and
        output batch axis set to N; "dynamic" is the default symbolic batch axis. "ratio of
        minima" is min(ANAN)/min(base), the least disturbed runs of each. "others' CPU %" is
        the share of the machine's CPU time (all cores, from `/proc/stat`, hypervisor steal
        included) that other processes used while the group's sets ran: above a few %, other jobs
        competed with the 2 threads measured and the figures of that group are disturbed.
        The goals table takes, for each figure, the worst case over models and k, from the
        ratio of medians.""")


def _threading_words(threading: str) -> str:
    if threading == "spinning":
        return "onnxruntime's default (idle threads spin), one global pool of 2 threads"
    return "a pool of 2 threads per session, idle threads sleep (spinning off)"


def report_latency(results: dict[str, Any]) -> str:
    """Section 1: one table per (model, batch)."""
    rows = results["latency"]
    text = ["## Latency: ANAN vs base CNN (onnxruntime)"]
    order = {t: i for i, t in enumerate(THREADINGS)}
    keys = sorted(
        {(r["model"], r["batch"], r.get("threading", "no spinning")) for r in rows},
        key=lambda t: (t[0], t[1], order[t[2]]),
    )
    for model, batch, threading in keys:
        group = [
            r
            for r in _pick(rows, model=model, batch=batch)
            if r.get("threading", "no spinning") == threading
        ]
        table = md_table(
            [
                "mode",
                "k",
                "ANAN options",
                "base ms",
                "ANAN ms",
                "ANAN / base [IQR per round]",
                "ratio of minima",
                "per process",
                "rounds",
                "others' CPU %",
            ],
            (
                (
                    r["mode"],
                    r["k"],
                    r["option"],
                    fmt_spread(r["base_s"]),
                    fmt_spread(r["anan_s"]),
                    fmt_ratio(r["ratio"], r["ratio_rounds"]),
                    f"{r['ratio_min']:.2f}",
                    " ".join(f"{v:.2f}" for v in r.get("set_ratios", [])),
                    r["rounds"],
                    f"{r['others_cpu_percent']:.0f}",
                )
                for r in group
            ),
        )
        text.append(f"### Model {model}, batch {batch}, threads {threading}\n\n{table}")
    return "\n\n".join(text)


def report_profile(results: dict[str, Any]) -> str:
    """Section 2: top nodes and op types of each profile, and the change from the base."""
    threading = next((p.get("threading") for p in results["profiles"]), None) or "no spinning"
    text = [
        "## Profile: where the time goes (onnxruntime profiler)",
        "Kernel time per run, summed per node and per op type over the profiled runs (after 2 "
        "warm-up runs; 10× more runs at batch 1). `anan/*` nodes are the astrocyte subgraph; "
        "everything else is the base network (in the base model onnxruntime fuses the first "
        "Conv with its Relu; `Reorder*` nodes convert to and from its blocked NCHWc layout). "
        "The profiler adds a little time per node, which shows at batch 1. Threads: "
        f"{_threading_words(threading)}.",
    ]
    for p in results["profiles"]:
        digits = 2 if p["kernel_ms"] >= 20 else 3
        head = (
            f"### {p['label']} ({p['mode']} batch {p['batch']}, model {p['model']}"
            f"{', k=' + str(p['k']) if p['label'] != 'base' else ''})\n\n"
            f"Run {p['run_ms']:.{digits}f} ms (median of {p['runs']}); kernels "
            f"{p['kernel_ms']:.{digits}f} ms; `anan/*` nodes {p['anan_nodes_ms']:.{digits}f} ms."
        )
        nodes = md_table(
            ["node", "op", "ms / run", "% of kernels"],
            (
                (
                    f"`{r['node']}`",
                    r["op"],
                    f"{r['ms']:.{digits}f}",
                    f"{100 * r['ms'] / p['kernel_ms']:.1f}",
                )
                for r in p["nodes"][:12]
            ),
        )
        ops = md_table(
            ["op type", "nodes", "ms / run", "% of kernels"],
            (
                (
                    r["op"],
                    r.get("nodes", ""),
                    f"{r['ms']:.{digits}f}",
                    f"{100 * r['ms'] / p['kernel_ms']:.1f}",
                )
                for r in p["ops"][:10]
            ),
        )
        text.append(f"{head}\n\nTop nodes:\n\n{nodes}\n\nBy op type:\n\n{ops}")
        base = next(
            (b for b in results["profiles"] if b["label"] == "base" and b["batch"] == p["batch"]),
            None,
        )
        if base is not None and p is not base:
            delta = profile_delta(base, p, digits)
            text.append("Against the base CNN's profile (same batch), by op type:\n\n" + delta)
    return "\n\n".join(text)


def profile_delta(base: dict[str, Any], anan: dict[str, Any], digits: int = 2) -> str:
    """Op types whose kernel time changed by more than 0.2 % of the base's, largest first."""
    before = {r["op"]: r["ms"] for r in base["ops"]}
    after = {r["op"]: r["ms"] for r in anan["ops"]}
    change = {op: after.get(op, 0.0) - before.get(op, 0.0) for op in set(before) | set(after)}
    threshold = 0.002 * base["kernel_ms"]
    rows = [
        (
            op,
            f"{before.get(op, 0):.{digits}f}",
            f"{after.get(op, 0):.{digits}f}",
            f"{change[op]:+.{digits}f}",
        )
        for op in sorted(change, key=lambda op: -change[op])
        if abs(change[op]) > threshold
    ]
    total = anan["kernel_ms"] - base["kernel_ms"]
    rows.append(
        (
            "**all kernels**",
            f"{base['kernel_ms']:.{digits}f}",
            f"{anan['kernel_ms']:.{digits}f}",
            f"{total:+.{digits}f}",
        )
    )
    return md_table(["op type", "base ms", "this ms", "Δ ms"], rows)


def report_loops(results: dict[str, Any]) -> str:
    """Section 3: the per-image procedures against the ANAN graph."""
    rows = results["loops"]
    n = rows[0]["images"] if rows else 0
    text = [
        "## Per-image loops: the paper's procedure vs the ANAN graph",
        "Per image: back up the first conv's weights, k forward passes of the whole network "
        "with `set_weights` between them (kernel means of the first conv's output, counters, "
        "multiplicative update in numpy), predict, restore. TF eager calls the Keras model "
        "directly; tf.function compiles the same two callables (traced once on a warm-up "
        "image; `set_weights` updates the captured variables in place). The onnxruntime literal "
        "loop is `LiteralReference.run` (weights fed as an input, k + 1 runs per image; its "
        "own session, default threads, spinning on). "
        f"Image by image ({n} images after one warm-up image), each procedure runs once, in a "
        f"rotating order and after a {LOOP_PAUSE_S * 1e3:.0f} ms pause (so that no other "
        "session's threads are still spinning), next to one ANAN run at batch 1 and one at "
        "the large batch (default "
        "options, dynamic batch; its time divided by the batch size), so every ratio compares "
        "runs taken seconds apart. Times are ms per image, median [IQR]. 'max |Δ|' is the "
        "largest difference of a loop's output from the ANAN graph's on the same image. "
        "The base CNN alone at the large batch runs alongside too: its speed-up over a loop "
        "bounds what any ANAN graph (which runs the base network once, plus the astrocytes) "
        "can reach.",
    ]
    if not rows:
        return "\n\n".join(text)
    labels = {
        "ort_literal": "onnxruntime literal loop",
        "tf_eager": "TF eager loop",
        "tf_function": "TF tf.function loop",
    }
    table_rows = []
    for r in rows:
        big, b1 = r.get("anan_big_s"), r["anan_b1_s"]
        for key, label in labels.items():
            if f"{key}_s" not in r:
                continue
            s = r[f"{key}_s"]
            table_rows.append(
                (
                    r["model"],
                    r["k"],
                    label,
                    fmt_spread(s),
                    f"{1 / s['median']:.1f}",
                    f"{s['median'] / big['median']:.1f}×" if big else "–",
                    f"{s['median'] / r['base_big_s']['median']:.1f}×" if big else "–",
                    f"{s['median'] / b1['median']:.1f}×",
                    f"{r[f'{key}_maxdiff']:.1e}",
                    f"{r['others_cpu_percent']:.0f}",
                )
            )
        anan_rows = [("ANAN batch 1", b1)]
        if big:
            anan_rows.append((f"ANAN batch {r['anan_batch']} (per image)", big))
            anan_rows.append((f"base CNN batch {r['anan_batch']} (per image)", r["base_big_s"]))
        for label, s in anan_rows:
            table_rows.append(
                (r["model"], r["k"], label, fmt_spread(s), f"{1 / s['median']:.0f}", *[""] * 5)
            )
    table = md_table(
        [
            "model",
            "k",
            "procedure",
            "ms / image",
            "images/s",
            "ANAN large batch speed-up",
            "base CNN large batch speed-up (bound)",
            "ANAN batch 1 speed-up",
            "max |Δ| vs ANAN",
            "others' CPU %",
        ],
        table_rows,
    )
    if not any("tf_eager_s" in r for r in rows):
        table += "\n\nTensorFlow loops skipped (--no-tf)."
    return "\n\n".join([*text, table])


def report_conversion(results: dict[str, Any]) -> str:
    """Section 4."""
    c = results.get("conversion")
    head = "## Conversion time"
    if not c:
        return head + "\n\nNot measured."
    rows = [
        (
            f"`convert_file` in a warm process, {c['source']} → ANAN ONNX",
            fmt_spread(c["warm_s"], 1),
            c["warm_s"]["n"],
        )
    ]
    if "fresh_process_s" in c:
        rows.append(
            (
                "`anan-onnx convert` in a fresh process (incl. Python + TF import)",
                f"{c['fresh_process_s']:.2f}",
                1,
            )
        )
    note = (
        f"Model {c['model']}; default parameters; the base ONNX model is written too. The warm "
        "process has converted once before (imports done"
        + (", TensorFlow and tf2onnx loaded)." if c["source"] == ".keras" else ").")
    )
    return f"{head}\n\n{note}\n\n" + md_table(["what", "seconds, median [IQR]", "runs"], rows)


def report_cold(results: dict[str, Any]) -> str:
    """Section 5."""
    c = results.get("cold_start")
    head = "## Cold start and peak RSS of an inference process"
    if not c:
        return head + "\n\nNot measured."
    rows = []
    n = next(iter(c["variants"].values()))["external_s"]["n"]
    for label, e in c["variants"].items():
        rows.append(
            (
                label,
                fmt_spread(e["external_s"], 1),
                fmt_spread(e["internal_s"], 1),
                f"{e['import_s']['median']:.2f}",
                f"{e['load_s']['median']:.2f}",
                f"{e['predict_s']['median']:.3f}",
                f"{e['rss_import_mb']['median']:.0f}",
                f"{e['rss_load_mb']['median']:.0f}",
                fmt_spread(e["maxrss_mb"], 1),
                f"{e['vmhwm_mb']['median']:.0f}",
                "yes" if e["tf_loaded"] else "no",
            )
        )
    note = (
        f"A fresh `python` process per run: imports, creates the session (or loads the Keras "
        f"model), predicts one {c['model']} image (batch {c['batch']}), prints its timings and "
        "`ru_maxrss` (started through `/bin/sh` so that it does not inherit the benchmark "
        "process's high-water mark; `VmHWM`, the kernel's own peak, is shown beside it). "
        "'outside' is the wall time of the whole process measured by the parent "
        "(interpreter start-up and exit included); 'inside' runs from the first line of the "
        "script to the prediction; the RSS columns are `ru_maxrss` after each stage. Runs "
        f"alternate between the two kinds, after one warm-up run each; median [IQR] of {n}. "
        f"Other processes used {c['others_cpu_percent']:.0f} % of the machine's CPU time "
        "meanwhile."
    )
    table = md_table(
        [
            "process",
            "outside s",
            "inside s",
            "import s",
            "session/model s",
            "first predict s",
            "RSS after import MB",
            "after load MB",
            "peak RSS MB",
            "VmHWM MB",
            "TF loaded",
        ],
        rows,
    )
    return f"{head}\n\n{note}\n\n{table}"


# --------------------------------------------------------------------------- main


def to_json(value: Any) -> Any:
    """Numpy scalars and tuples made JSON-ready."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and writes the report."""
    args = parse_args(argv)
    plan = make_plan(args)
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_anan_") as name:
        tmp = Path(name)
        ref_sha = use_git_ref(args.git_ref, tmp) if args.git_ref else None
        results: dict[str, Any] = {
            "command": command_line(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_info(),
            "versions": versions(plan.use_tf),
            "code": code_state(ref_sha),
            "plan": dataclasses.asdict(plan),
            "models": [{"name": n, "text": MODELS[n].describe()} for n in plan.models],
        }
        if plan.use_tf:
            import_tf()
        preps = [prepare_model(MODELS[n], plan, tmp) for n in plan.models]
        log(f"models ready: {', '.join(plan.models)}")
        # ONNX Runtime's default first; each set of sessions runs in a process of its own
        spinning = global_pool_available()
        threadings = THREADINGS if spinning else ("no spinning",)
        groups = prepare_latency(preps, plan, tmp)
        results["latency"] = [
            row for threading in threadings for row in run_latency(groups, plan, log, threading)
        ]
        results["loops"] = run_loops(preps, plan, log)
        results["conversion"] = run_conversion(preps[0], plan, tmp)
        log(f"conversion: {results['conversion']['warm_s']['median']:.2f} s")
        results["cold_start"] = run_cold_start(preps[0], plan, tmp)
        log("cold start done")
        # last: once the global pool exists, sessions with their own pools are refused
        threading = "spinning" if spinning and use_global_pool() else "no spinning"
        results["profiles"] = run_profiles(preps, plan, tmp, threading)
        log("profiles done")
    results["tensorflow_imported"] = "tensorflow" in sys.modules
    results["loadavg_at_end"] = os.getloadavg()
    results["wall_s"] = time.perf_counter() - start
    results["goals"] = goals(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results), encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(results), indent=1), encoding="utf-8")
    log(f"wrote {args.out}" + (f" and {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
