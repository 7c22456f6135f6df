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

Shards are cut at multiples of the fast grid's chunk, and the results are concatenated in
shard order, so every image is computed in the same chunk, by the same code, as locally:
the outputs, and so ``grid.csv``, ``best.json`` and the report, are the same bytes.

Example:
    >>> out = model_outputs(LocalEngine(), model, images, None, 256)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import onnx

from anan_onnx.evaluation.lazy_images import LazyImages, iter_batches
from anan_onnx.params import AnanParams

__all__ = ["Engine", "LocalEngine", "grid_outputs", "model_outputs"]

Images = np.ndarray | LazyImages
ShardFn = Callable[[Any, Any], Any]  # (shared, item) -> result; items: image shards, folds


class Engine(Protocol):
    """Maps a shard function over slices of the images and returns the results in order."""

    name: str

    def shards(self, n_images: int, unit: int) -> list[tuple[int, int]]:
        """``(start, stop)`` slices covering ``0..n_images``, cut at multiples of ``unit``."""
        ...

    def map(self, fn: ShardFn, shared: Any, items: Sequence[Any]) -> list[Any]:
        """``[fn(shared, item) for item in items]``, wherever it runs."""
        ...


class LocalEngine:
    """Everything in this process, as one shard."""

    name = "local"

    def shards(self, n_images: int, unit: int) -> list[tuple[int, int]]:
        return [(0, n_images)]

    def map(self, fn: ShardFn, shared: Any, items: Sequence[Any]) -> list[Any]:
        return [fn(shared, item) for item in items]


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
    parts = [
        predict_batched(session, batch, batch_size=batch_size)
        for _, batch in iter_batches(images, batch_size)
    ]
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


def grid_outputs(
    engine: Engine,
    fast: Any,
    base: onnx.ModelProto,
    options: AnanParams,
    points: Sequence[Any],
    images: Images,
    *,
    layer: str | None,
    threads: int | None,
    progress: bool | None,
) -> tuple[np.ndarray, int]:
    """``fast.predict(images, points)`` spread over the engine: (C, N, ...) and rest rows.

    ``fast`` is the :class:`~anan_onnx.evaluation.fastgrid.FastGrid` of ``options``; locally
    it does the work itself, elsewhere each shard builds its own from ``base``.
    """
    bounds = engine.shards(len(images), fast.chunk_size(images.shape))
    if len(bounds) == 1:
        probs = fast.predict(images, points, progress=progress)
        return probs, fast.stats["rest_rows"]
    shared = (base, options, list(points), layer, _threads(engine, threads), fast.batch_size, False)
    results = engine.map(_grid_shard, shared, _slices(images, bounds))
    probs = np.concatenate([r[0] for r in results], axis=1)
    return probs, sum(r[1] for r in results)
