"""Ray as the engine of ``tune`` and ``evaluate``: shards of images as Ray tasks.

:class:`RayEngine` implements :class:`anan_onnx.evaluation.engine.Engine`: the driver cuts
the images into a few shards per worker (at multiples of the fast grid's chunk, so each
image is computed in the same chunk as locally), puts the shared inputs (the model, the
options, the grid points) into the object store once, and runs one Ray task per shard. A
task reads its own images (file paths travel, not pixels). For one model's outputs
(:meth:`RayEngine.map`) the driver gets them in shard order (images x classes). For the
grid (:meth:`RayEngine.map_reduce`) each shard's outputs stay in the object store, cut
into configuration groups, and one reduce task per group scores its configurations on
every shard's part: the driver gets score dicts, never configurations x images floats
(Ray returns a part of up to 100 KiB inline to the driver: the grid sizes its groups so
that a part holds :attr:`RayEngine.min_part_bytes`; docs/scale.md §8).
The scores are computed by the same function on the same arrays as locally: the same
bytes.

A worker that dies is retried by Ray (``max_retries``), and a shard output lost with its
node is recomputed from its task (lineage); tasks are pure functions of their inputs, so a
retried shard gives the same outputs (tests/evaluation/test_ray_engine.py kills a shard
task and a reduce task from the test, by wrapping their functions).

Example:
    >>> engine = RayEngine(address="auto")  # doctest: +SKIP
    >>> result = grid_search(base, images, labels, engine=engine)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Sequence
from typing import Any

from anan_onnx.distributed import INSTALL_HINT
from anan_onnx.errors import AnanError, first_line

__all__ = ["RayEngine", "connect", "require_ray"]

#: Retries of a task whose worker died.
MAX_RETRIES = 3


def require_ray() -> Any:
    """The ``ray`` module, or the one-line install hint."""
    try:
        import ray
    except ImportError:
        raise AnanError(INSTALL_HINT) from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connects to the Ray cluster at ``address`` (or starts a local one); True if started.

    Already connected (e.g. a test session or a notebook): nothing is done. ``address``
    ``"auto"`` finds a cluster started on this machine with ``ray start --head``; a
    ``ray://host:10001`` address uses Ray Client.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    # no dashboard, no worker logs or INFO lines mixed into the command's output
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address is None:
        kwargs["num_cpus"] = num_cpus
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        _probe(target)
    try:
        ray.init(address=address, **kwargs)
    except Exception as exc:  # Ray raises many kinds (a start-up failure: 28 lines)
        where = f"at {target}" if target else "on this machine"
        raise AnanError(
            f"cannot start or reach a Ray cluster {where} ({first_line(exc, 150)}): check "
            "--address (e.g. auto after `ray start --head`, or ray://HOST:10001)"
        ) from None
    return True


#: Seconds to wait for a Ray address to accept a connection: ray.init waits for minutes
#: (nothing after 616 s for 127.0.0.1:1).
CONNECT_TIMEOUT = 10.0


def _probe(address: str) -> None:
    """Refuses ``HOST:PORT`` (or ``ray://HOST:PORT``) that accepts no TCP connection within
    :data:`CONNECT_TIMEOUT`; ``auto`` and ``local`` are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except (OSError, ValueError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or first_line(exc, 80)
        raise AnanError(
            f"no Ray cluster answers at {address} ({reason}, waited up to "
            f"{CONNECT_TIMEOUT:g} s): check --address or RAY_ADDRESS (e.g. auto after "
            "`ray start --head`)"
        ) from None


def _run_shard(fn: Any, shared: Any, item: Any) -> Any:
    """One shard on a worker."""
    return fn(shared, item)


def _run_split_shard(fn: Any, shared: Any, item: Any, n_groups: int) -> tuple[Any, ...]:
    """One shard on a worker: its small result, then its part of each group, as separate
    objects (``num_returns``), so that each group's reduce task fetches only its parts."""
    small, parts = fn(shared, item)
    if len(parts) != n_groups:
        raise AnanError(f"a shard gave {len(parts)} parts for {n_groups} groups")
    return (small, *parts)


def _run_reduce(reduce: Any, shared: Any, *parts: Any) -> Any:
    """One group's reduce on a worker: Ray resolved ``parts`` (one per shard, in order)."""
    return reduce(shared, list(parts))


class RayEngine:
    """Runs shard functions as Ray tasks on the connected cluster.

    Args:
        address: the cluster (see :func:`connect`); ``None`` starts a local one.
        workers: shards are sized for this many parallel tasks (default: the cluster's CPUs).
    """

    name = "ray"
    #: each configuration group's part of a shard holds at least this many bytes: Ray
    #: returns results of up to 100 KiB (max_direct_call_object_size) inline to the caller,
    #: the driver, and would then ship them again to the reduce tasks (engine.grid_scores)
    min_part_bytes = 128 * 1024
    #: onnxruntime threads per task when --threads is not given: one task per CPU
    threads = 1

    def __init__(self, address: str | None = None, *, workers: int | None = None) -> None:
        self._ray = require_ray()
        self.started = connect(address, num_cpus=workers)
        cpus = int(self._ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, workers or cpus)
        task = self._ray.remote(num_cpus=1, max_retries=MAX_RETRIES)
        self._task, self._split, self._reduce = (
            task(_run_shard),
            task(_run_split_shard),
            task(_run_reduce),
        )

    def shards(self, n_images: int, unit: int) -> list[tuple[int, int]]:
        # two shards per worker: a slow or restarted worker holds up less of the run
        size = math.ceil(n_images / (2 * self.workers)) if n_images else 1
        size = max(unit, math.ceil(size / unit) * unit)
        return [(a, min(n_images, a + size)) for a in range(0, n_images, size)]

    def map(self, fn: Any, shared: Any, items: Sequence[Any]) -> list[Any]:
        ray = self._ray
        ref = ray.put(shared)
        return self._get([self._task.remote(fn, ref, item) for item in items])

    def map_reduce(
        self,
        fn: Any,
        shared: Any,
        items: Sequence[Any],
        reduce: Any,
        reduce_shared: Any,
        n_groups: int,
    ) -> tuple[list[Any], list[Any], Any]:
        """One task per item whose parts stay in the object store, then one task per group
        that receives that group's part of every item: the driver gets the smalls and the
        reductions. Lost parts are recomputed by Ray from their task (lineage)."""
        ray = self._ray
        ref, reduce_ref = ray.put(shared), ray.put(reduce_shared)
        split = self._split.options(num_returns=n_groups + 1)
        outs = [split.remote(fn, ref, item, n_groups) for item in items]
        reduced = [
            self._reduce.remote(reduce, reduce_ref, *(out[g + 1] for out in outs))
            for g in range(n_groups)
        ]
        smalls, results = self._get([out[0] for out in outs]), self._get(reduced)

        def fetch(group: int) -> list[Any]:
            return self._get([out[group + 1] for out in outs])

        return smalls, results, fetch

    def _get(self, refs: list[Any]) -> list[Any]:
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayError as exc:
            error = _one_line(ray, exc)
            if error is exc:
                raise
            raise error from None


def _one_line(ray: Any, exc: Exception) -> Exception:
    """What the user sees of a failed Ray run: an AnanError on a worker, its message; a Ray
    failure after its retries (a node lost, a worker crashed or killed for memory, an
    object lost), one line and what to do; a bug in a task (another exception), as is."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, AnanError):
        return AnanError(str(cause))
    if isinstance(exc, ray.exceptions.RayTaskError) and not isinstance(
        cause, ray.exceptions.RayError
    ):
        return exc
    failure = cause if isinstance(cause, ray.exceptions.RayError) else exc
    return AnanError(
        f"the Ray run failed ({type(failure).__name__}: {first_line(failure, 150)}): a node "
        "was lost or ran out of memory: raise --workers / object store memory, or rerun"
    )

    def close(self) -> None:
        """Shuts down the cluster if this engine started it."""
        if self.started:
            self._ray.shutdown()
            self.started = False
