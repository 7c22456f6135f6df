"""onnxruntime sessions set up like ``anan_onnx.Session``, timed in rounds in fresh processes."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gc
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from benchmarks.bench.config import THREADS, ModelSpec
from benchmarks.bench.models import images
from benchmarks.ort_session import open_session


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
        self.session = open_session(
            model.SerializeToString(),
            **threading_settings(threading),
            sequential=True,
            optimization_all=True,
        )
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """All outputs for a batch in the model's layout."""
        return self.session.run(None, {self.input_name: batch})


def threading_settings(threading: str) -> dict[str, Any]:
    """``benchmarks.ort_session`` settings for the threads of ``threading`` (see ``Runner``)."""
    if threading == "spinning":
        return {"global_pool": True, "quiet": True}  # the global pool's 2 threads
    return {"threads": THREADS, "inter_threads": 1, "spinning": False, "quiet": True}


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


def rotated(names: list[str], index: int) -> list[str]:
    """``names`` starting from entry ``index`` (cyclically): the creation order of set ``index``."""
    return names[index % len(names) :] + names[: index % len(names)]
