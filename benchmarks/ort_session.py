"""The one place the benchmarks set up onnxruntime sessions (CPU provider).

Each benchmark measures under its own threading (one thread for CPU-time ratios, two for
the latency benchmark, a global pool for the spinning runs), so the options are arguments
rather than one fixed set. An argument left at ``None``/``False`` leaves onnxruntime's own
default untouched: each script gets exactly the options it set before these were merged,
so its figures stay comparable with the committed ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: onnxruntime's warnings (unused initializers, ...) would interleave with the tables
QUIET = 3


def session_options(
    *,
    threads: int | None = None,
    inter_threads: int | None = None,
    sequential: bool = False,
    spinning: bool | None = None,
    global_pool: bool = False,
    optimization_all: bool = False,
    quiet: bool = False,
    profile: bool = False,
    profile_prefix: str | Path | None = None,
) -> Any:
    """``onnxruntime.SessionOptions`` with what is asked and nothing else.

    Args:
        threads: intra-op threads (``None``: onnxruntime's default, one per core).
        inter_threads: inter-op threads.
        sequential: the sequential executor (``ORT_SEQUENTIAL``), set explicitly.
        spinning: ``False`` makes idle intra-op threads sleep between runs
            (``session.intra_op.allow_spinning=0``): with several sessions in one process,
            idle spinning threads take the cores from the session being timed.
        global_pool: the process's global thread pool (``use_per_session_threads=False``;
            the pool is made by ``benchmarks.bench.sessions.use_global_pool``).
        optimization_all: graph optimisation level ``ORT_ENABLE_ALL``, set explicitly.
        quiet: log errors only.
        profile: onnxruntime's profiler on; ``profile_prefix`` names its file.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if global_pool:
        options.use_per_session_threads = False
    if threads is not None:
        options.intra_op_num_threads = threads
    if inter_threads is not None:
        options.inter_op_num_threads = inter_threads
    if sequential:
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if spinning is False:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimization_all:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if quiet:
        options.log_severity_level = QUIET
    if profile or profile_prefix is not None:
        options.enable_profiling = True
    if profile_prefix is not None:
        options.profile_file_prefix = str(profile_prefix)
    return options


def open_session(model: str | Path | bytes, options: Any = None, **settings: Any) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for ``model`` (a path or serialized
    bytes), with ``options`` or, if none, ``session_options(**settings)``."""
    import onnxruntime as ort

    if options is None:
        options = session_options(**settings)
    elif settings:
        raise TypeError("pass either options or settings, not both")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
