"""Where the image work of ``tune`` and ``evaluate`` runs: here, or spread over workers.

The expensive parts are per image: the base CNN's outputs, the fast grid (first layer per
image, rest of the network per distinct gain vector) and the exported ANAN models' outputs.
Each is written here as a *shard function* ``fn(shared, images) -> result`` over a slice of
the images, and an engine maps it over shards:

* :class:`LocalEngine` (the default): one shard, all images, in this process; the shard
  functions stream the images chunk by chunk, so memory does not grow with their number;
* ``anan_onnx.distributed.RayEngine``: many shards, each a Ray task on some worker (and,
  for ``evaluate`` over several fold models, one task per fold model, computed there with
  the local engine).

Shards are cut at multiples of the fast grid's chunk, so every image is computed in the
same chunk, by the same code, as locally. A model's outputs are concatenated in shard
order; the fast grid's are scored where they are (:func:`grid_scores`: a reduce per
configuration group over every shard's outputs, by :func:`score_configurations`, as
locally), so the scores, and so ``grid.csv``, ``best.json`` and the report, are the same
bytes, and only score dicts reach the driver (but parts too small for Ray's object
store, at most a shard's outputs each: :func:`_groups`).

Example:
    >>> out = model_outputs(LocalEngine(), model, images, None, 256)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import onnx

from anan_onnx.evaluation.lazy_images import LazyImages, iter_batches
from anan_onnx.params import AnanParams

__all__ = [
    "Engine",
    "GridScores",
    "LocalEngine",
    "grid_scores",
    "model_outputs",
    "score_configurations",
]

Images = np.ndarray | LazyImages
ShardFn = Callable[[Any, Any], Any]  # (shared, item) -> result; items: image shards, folds
ReduceFn = Callable[[Any, list[Any]], Any]  # (shared, one group's parts) -> result


class Engine(Protocol):
    """Maps a shard function over slices of the images and returns the results in order."""

    name: str

    def shards(self, n_images: int, unit: int) -> list[tuple[int, int]]:
        """``(start, stop)`` slices covering ``0..n_images``, cut at multiples of ``unit``."""
        ...

    def map(self, fn: ShardFn, shared: Any, items: Sequence[Any]) -> list[Any]:
        """``[fn(shared, item) for item in items]``, wherever it runs."""
        ...

    def map_reduce(
        self,
        fn: ShardFn,
        shared: Any,
        items: Sequence[Any],
        reduce: ReduceFn,
        reduce_shared: Any,
        n_groups: int,
    ) -> tuple[list[Any], list[Any], Callable[[int], list[Any]]]:
        """Map, then reduce by group where the parts are.

        ``fn(shared, item)`` gives ``(small, [part_0, ..., part_{n_groups-1}])``; group
        ``g`` is reduced by ``reduce(reduce_shared, [part_g of each item, in order])``.
        Returns the smalls (per item), the reductions (per group) and ``fetch(g)``, which
        brings group ``g``'s parts here (for the few that need them).
        """
        ...


class LocalEngine:
    """Everything in this process, as one shard."""

    name = "local"

    def shards(self, n_images: int, unit: int) -> list[tuple[int, int]]:
        return [(0, n_images)]

    def map(self, fn: ShardFn, shared: Any, items: Sequence[Any]) -> list[Any]:
        return [fn(shared, item) for item in items]

    def map_reduce(
        self,
        fn: ShardFn,
        shared: Any,
        items: Sequence[Any],
        reduce: ReduceFn,
        reduce_shared: Any,
        n_groups: int,
    ) -> tuple[list[Any], list[Any], Callable[[int], list[Any]]]:
        outs = [fn(shared, item) for item in items]

        def fetch(group: int) -> list[Any]:
            return [parts[group] for _, parts in outs]

        reduced = [reduce(reduce_shared, fetch(g)) for g in range(n_groups)]
        return [small for small, _ in outs], reduced, fetch


def _threads(engine: Engine, threads: int | None) -> int | None:
    """onnxruntime threads per shard: as asked, else the engine's (one per task for Ray)."""
    return threads or getattr(engine, "threads", None)


def _slices(images: Images, bounds: list[tuple[int, int]]) -> list[Images]:
    if bounds == [(0, len(images))]:
        return [images]
    if isinstance(images, LazyImages):
        return [images.subset(a, b) for a, b in bounds]
    return [images[a:b] for a, b in bounds]


# --- plain model outputs -------------------------------------------------------------------


def _outputs_shard(shared: tuple[onnx.ModelProto, int | None, int], images: Images):
    """A model's first output on a shard, ``batch_size`` images read and run at a time."""
    # onnxruntime where the shard runs (in a Ray worker under --engine ray)
    from anan_onnx.runtime.batched import predict_batched
    from anan_onnx.runtime.session import Session

    model, threads, batch_size = shared
    session = Session(model, threads=threads)
    parts = []
    for _, batch in iter_batches(images, batch_size):
        parts.append(predict_batched(session, batch, batch_size=batch_size))
        del batch  # else it is still held while the next one is read: one batch more at peak
    return np.concatenate(parts)


def model_outputs(
    engine: Engine,
    model: onnx.ModelProto,
    images: Images,
    threads: int | None,
    batch_size: int,
) -> np.ndarray:
    """The first output of ``model`` on every image, as ``predict_batched`` gives it."""
    bounds = engine.shards(len(images), batch_size)
    shared = (model, _threads(engine, threads), batch_size)
    return np.concatenate(engine.map(_outputs_shard, shared, _slices(images, bounds)))


# --- the fast grid -------------------------------------------------------------------------


def _grid_shard(shared: tuple, images: Images) -> tuple[np.ndarray, int]:
    """Every configuration's outputs on a shard, and the rest-of-network runs it took."""
    from anan_onnx.evaluation.fastgrid import FastGrid

    base, options, points, layer, threads, batch_size, progress = shared
    fast = FastGrid(base, options, layer=layer, threads=threads, batch_size=batch_size)
    probs = fast.predict(images, points, progress=progress)
    return probs, fast.stats["rest_rows"]


def _scored_shard(shared: tuple, images: Images) -> tuple[int, list[np.ndarray]]:
    """A shard's rest-of-network runs and its outputs cut into the configuration groups."""
    probs, runs = _grid_shard(shared[:-1], images)
    return runs, [probs[a:b] for a, b in shared[-1]]


def score_configurations(
    shared: tuple[np.ndarray, list[int] | None], parts: Sequence[np.ndarray]
) -> list[dict[str, float]]:
    """The scores of each configuration of a group, from its outputs on every shard
    (``parts``: (configurations, shard images, ...) each, in image order).

    Wherever it runs, it is the same function on the same arrays as locally, so the
    floats (and so ``grid.csv``) are the same bytes.
    """
    from anan_onnx.evaluation.scores import scores

    labels, present = shared
    probs = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    cache: dict[bytes, dict[str, float]] = {}  # by a digest: the outputs themselves are O(n)
    result = []
    for p in probs:
        # many configurations give identical outputs: score once
        key = hashlib.sha256(np.ascontiguousarray(p).data).digest()
        if key not in cache:
            cache[key] = scores(labels, p, classes=present)
        result.append(cache[key])
    return result


class GridScores:
    """One option set's grid, scored: a score dict per configuration, the rest-of-network
    runs, and each configuration's outputs on demand (:meth:`outputs`: fetched from where
    they were computed, for the few that need per-image data, e.g. a bootstrap interval)."""

    def __init__(self, scores: list[dict[str, float]], rest_rows: int, fetch: Callable) -> None:
        self.scores, self.rest_rows, self._fetch = scores, rest_rows, fetch

    def outputs(self, index: int) -> np.ndarray:
        """The outputs (N, ...) of configuration ``index`` on every image."""
        return self._fetch(index)


def grid_scores(
    engine: Engine,
    fast: Any,
    base: onnx.ModelProto,
    options: AnanParams,
    points: Sequence[Any],
    images: Images,
    labels: tuple[np.ndarray, list[int] | None],
    *,
    layer: str | None,
    threads: int | None,
    progress: bool | None,
) -> GridScores:
    """Every configuration of ``points`` scored on ``images`` (``labels``: the labels and
    the classes present), spread over the engine.

    ``fast`` is the :class:`~anan_onnx.evaluation.fastgrid.FastGrid` of ``options``; locally
    it does the work itself. Spread, each shard builds its own from ``base`` and cuts its
    outputs into configuration groups; one reduce task per group scores its configurations
    on all the images: the driver receives score dicts, never the configurations x images
    outputs.
    """
    bounds = engine.shards(len(images), fast.chunk_size(images.shape))
    if len(bounds) == 1:
        probs = fast.predict(images, points, progress=progress)
        found = score_configurations(labels, [probs])
        return GridScores(found, fast.stats["rest_rows"], lambda i: probs[i])
    # a group's part of the first (largest) shard is made large enough to stay off the driver
    config_bytes = (bounds[0][1] - bounds[0][0]) * _output_bytes(base)
    workers, min_bytes = getattr(engine, "workers", 1), getattr(engine, "min_part_bytes", 0)
    groups = _groups(len(points), workers, config_bytes, min_bytes)
    work = (base, options, list(points), layer, _threads(engine, threads), fast.batch_size)
    shared = (*work, False, groups)  # no progress bar on workers; each group's configurations
    runs, reduced, fetch = engine.map_reduce(
        _scored_shard, shared, _slices(images, bounds), score_configurations, labels, len(groups)
    )

    def outputs(index: int) -> np.ndarray:
        group = next(g for g, (a, b) in enumerate(groups) if a <= index < b)
        return np.concatenate(fetch(group), axis=1)[index - groups[group][0]]

    return GridScores([s for part in reduced for s in part], sum(runs), outputs)


def _groups(
    n_configs: int, workers: int, config_bytes: int, min_bytes: int
) -> list[tuple[int, int]]:
    """Configuration ranges, one reduce task each: about one per worker, but few enough that
    each group's part of a shard (``config_bytes`` per configuration) holds ``min_bytes``.

    Ray returns a task's results of up to 100 KiB inline to its caller, the driver, which
    then ships them on to the reduce tasks: parts above that stay in the object store.
    The ranges are cut evenly, so the smallest is as large as the count allows.
    """
    per_group = math.ceil(min_bytes / max(1, config_bytes))  # configurations, at least
    n = max(1, min(workers, n_configs // max(1, per_group)))
    return [(i * n_configs // n, (i + 1) * n_configs // n) for i in range(n)]


def _output_bytes(model: onnx.ModelProto) -> int:
    """Bytes of one image's first output in float32 (unknown dimensions count as 1)."""
    dims = model.graph.output[0].type.tensor_type.shape.dim[1:]
    return 4 * math.prod(max(1, d.dim_value) for d in dims)
