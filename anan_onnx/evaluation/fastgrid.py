"""Many ANAN configurations of one base model on one batch, without re-running what they share.

The parameters k, μ, a, b, idle never change the first layer's convolutions: by the spec's
identity the target layer's output after the k steps is ``g⁺·P + g⁻·N + β`` with
``P = conv(x, W⁺)``, ``N = conv(x, W⁻)`` (or ``g·M + β`` with ``M = conv(x, W0)`` under the
multiplicative rule, where both gains always move together). So a grid search needs:

(a) the **first layer** once per image: the maps (and their spatial means, which are all the
    steps need for ``signal=pre, reduce=mean``), from a sub-model of the base network that ends
    at the target convolution;
(b) the **gain recurrence** of every configuration, vectorised in numpy (:func:`simulate_gains`,
    written from the spec and tested equal to the graph of :mod:`anan_onnx.rewrite.graph`);
(c) the **rest of the network** once per distinct final gain vector of an image: many
    configurations give the same gains (nothing triggers, or the counters saturate), so the
    gain vectors are deduplicated per image before ``g⁺·P + g⁻·N + β`` is fed, in batches, to a
    sub-model of the base network that starts at the target convolution's output.

Everything is float32 and follows the node order of the ANAN graph, so the probabilities equal
those of the tunable ONNX export run configuration by configuration (tests: ≤ 1e-5).

Example:
    >>> grid = FastGrid(onnx.load("base.onnx"), AnanParams(rule="additive"))  # doctest: +SKIP
    >>> points = [GridPoint(4, 2, 1.05, 0.2), GridPoint(8, 3, 1.5, 0.5)]
    >>> probs = grid.predict(images, points)   # (2, N, classes)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx

from anan_onnx._public import public
from anan_onnx.choices import Counter, Reduce, Rule, Signal
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.lazy_images import LazyImages, iter_batches
from anan_onnx.evaluation.sub_models import (
    PREFIX,
    cpu_session,
    first_layer_model,
    normalise,
    rest_model,
    split_target,
)
from anan_onnx.limits import positive_int
from anan_onnx.options import BATCH_ROWS
from anan_onnx.params import AnanParams
from anan_onnx.runtime.inputs import check_batch

__all__ = ["FastGrid", "GridPoint", "simulate_gains"]

#: floats per block when maps are combined in numpy (bounds temporary memory to ~64 MB)
_BLOCK_FLOATS = 1 << 24
#: first-layer maps kept in memory at once (floats): about 64 MB, whatever the number of images
_CHUNK_FLOATS = 1 << 24

Activity = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@public
@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One numeric configuration of a grid: k, μ, a, b, idle.

    The options (rule, counter, signal, reduce) are fixed per :class:`FastGrid`.

    Example:
        >>> GridPoint(4, 2, 1.05, 0.3).params(AnanParams(rule="additive")).rule
        'additive'
    """

    k: int
    mu: int
    a: float
    b: float
    idle: float = 0.0

    def params(self, options: AnanParams) -> AnanParams:
        """Full parameters: this point's numbers with the options of ``options``."""
        return dataclasses.replace(options, **dataclasses.asdict(self))


@dataclasses.dataclass
class _Configs:
    """A list of grid points as float32 columns shaped (C, 1, 1) to broadcast over (n, O)."""

    k: np.ndarray
    mu: np.ndarray
    a: np.ndarray
    b: np.ndarray
    idle: np.ndarray

    @classmethod
    def of(cls, points: Sequence[GridPoint]) -> _Configs:
        if not points:
            raise AnanError("the grid is empty: give at least one value per parameter")
        cols = {
            name: np.array([getattr(p, name) for p in points], np.float32).reshape(-1, 1, 1)
            for name in (f.name for f in dataclasses.fields(GridPoint))
        }
        return cls(**cols)

    def __len__(self) -> int:
        return len(self.k)


def simulate_gains(
    activity: Activity,
    points: Sequence[GridPoint],
    shape: tuple[int, int],
    *,
    rule: str = Rule.MULTIPLICATIVE,
    counter: str = Counter.ABSORBING,
) -> tuple[np.ndarray, np.ndarray]:
    """The k-step astrocyte recurrence of the spec for every configuration at once.

    Per image and kernel the state is the counter ``r`` and the gains ``g⁺, g⁻`` (the weights
    are ``g⁺·W⁺ + g⁻·W⁻``). Each step: activity ``s`` → ``u = ±1`` (eq. 1) → counter (eq. 2,
    absorbing or clamp) → trigger (eq. 3) → gain update (multiplicative: ``g·a``, ``g·(1-b)``;
    additive: ``g⁺ += |g⁺|·z``, ``g⁻ -= |g⁻|·z``). Steps beyond a configuration's k keep its
    state, as in the tunable export, so all configurations run ``max(k)`` steps together.

    Args:
        activity: ``activity(g_pos, g_neg, need)`` → ``s`` (C, n, O), float32; entries where
            ``need`` is False are not used (a held absorbing counter ignores its input), so
            an implementation may skip them.
        points: the configurations (C).
        shape: (n images, O kernels).
        rule, counter: the spec's options.

    Returns:
        ``(g_pos, g_neg)``, each float32 (C, n, O). Under the multiplicative rule both are
        the same array (one gain on ``conv(x, W0)``).

    Example:
        >>> means = np.array([[0.5, -0.5]], np.float32)          # one image, two kernels
        >>> act = lambda gp, gn, need: gp * means
        >>> gp, _ = simulate_gains(act, [GridPoint(2, 1, 2.0, 0.5)], (1, 2))
        >>> gp[0, 0].tolist()                                    # excited twice, inhibited twice
        [4.0, 0.25]
    """
    cfg = _Configs.of(points)
    full = (len(cfg), *shape)
    gp = np.ones(full, np.float32)
    gn = gp if rule == Rule.MULTIPLICATIVE else np.ones(full, np.float32)
    r = np.zeros(full, np.float32)
    one = np.float32(1.0)
    # as the graph computes it: 1 - b (multiplicative) or -b (additive), in float32
    b_factor = (one - cfg.b) if rule == Rule.MULTIPLICATIVE else -cfg.b
    steps = int(cfg.k.max())
    for t in range(1, steps + 1):
        active = np.float32(t - 1) < cfg.k  # (C, 1, 1)
        held = np.abs(r) == cfg.mu
        need = active & ~held if counter == Counter.ABSORBING else np.broadcast_to(active, full)
        # a held counter still triggers every step; only its activity is not needed
        s = activity(gp, gn, need) if need.any() else np.zeros(full, np.float32)
        u = np.where(s > 0, one, -one)
        summed = r + u
        if counter == Counter.CLAMP:
            new_r = np.minimum(np.maximum(summed, -cfg.mu), cfg.mu)
        else:
            new_r = np.where(held, r, summed)
        excite, inhibit = new_r == cfg.mu, new_r == -cfg.mu
        if rule == Rule.MULTIPLICATIVE:
            m = np.where(excite, cfg.a, np.where(inhibit, b_factor, one))
            gp = gn = np.where(active, gp * m, gp)
        else:
            z = np.where(excite, cfg.a, np.where(inhibit, b_factor, cfg.idle))
            new_gp = gp + np.abs(gp) * z
            new_gn = gn - np.abs(gn) * z  # W⁻ is negative: |w|·z moves g⁻ the other way
            gp, gn = np.where(active, new_gp, gp), np.where(active, new_gn, gn)
        r = np.where(active, new_r, r)
    return gp, gn


# --- the fast grid -------------------------------------------------------------------------


@public
class FastGrid:
    """Evaluates many ANAN configurations of one base model on the same images.

    Args:
        base: the base ONNX model (e.g. from :func:`anan_onnx.load_base`).
        options: rule, counter, signal and reduce (its k, μ, a, b, idle are not used).
        layer: target Conv (default: the first, as in :func:`anan_onnx.convert_model`).
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
        batch_size: rows per run of the rest of the network.
        pooled: allow the pooled plan (default); ``False`` forces the maps plan (tests).

    Attributes:
        target_layer: name of the modulated Conv node.
        plan: ``"pooled"`` (multiplicative rule and Conv → activation → MaxPool: the rest
            of the network starts after the pool and is fed max/min-pooled maps) or
            ``"maps"`` (the rest starts at the conv output).
        stats: counts of the last :meth:`predict` call: ``images``, ``configs``,
            ``rest_rows`` (runs of the rest of the network, after deduplication).

    Raises:
        AnanError: the model is already an ANAN model, has no suitable Conv, or the options
            do not fit it (``signal=post`` without an activation).
    """

    def __init__(
        self,
        base: onnx.ModelProto,
        options: AnanParams | None = None,
        *,
        layer: str | None = None,
        threads: int | None = None,
        batch_size: int = BATCH_ROWS,
        pooled: bool = True,
    ) -> None:
        self.options = options or AnanParams()
        self.batch_size = positive_int("batch_size", batch_size)
        normalised, self.target_layer = normalise(base, self.options, layer)
        self._target = split_target(normalised, self.target_layer, self.options.signal)
        self._n_maps = 1 if self.options.rule == Rule.MULTIPLICATIVE else 2
        pooled = pooled and self._n_maps == 1 and self._target.pool is not None
        self.plan = "pooled" if pooled else "maps"
        if not pooled:
            self._target.pool = None
        self._use_means = self.options.signal == Signal.PRE and self.options.reduce == Reduce.MEAN
        # what the numpy side needs from the first layer: maps for map-based activities
        # and for feeding the maps plan; pooled maps for the pooled plan
        self._outputs = []
        if not (pooled and self._use_means):
            self._outputs += [f"map{i}" for i in range(self._n_maps)]
        if self._use_means:
            self._outputs += [f"mean{i}" for i in range(self._n_maps)]
        if pooled:
            self._outputs += ["pool_max", "pool_min"]
        first = first_layer_model(normalised, self._target, self._n_maps, self._outputs)
        rest, self._rest_reads_image = rest_model(normalised, self._target, self._n_maps, pooled)
        self._first = cpu_session(first, threads)
        self._rest = cpu_session(rest, threads)
        self._image_name = self._first.get_inputs()[0].name
        self._image_shape = tuple(self._first.get_inputs()[0].shape)
        self._rest_output = self._rest.get_outputs()[0].name
        bias = self._target.bias
        out_channels = self._target.weight.shape[0]
        self._bias = np.zeros(out_channels, np.float32) if bias is None else bias.astype(np.float32)
        self._has_bias = bias is not None
        self.stats: dict[str, int] = {}

    # (a) the first layer, once per image
    def first_layer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """What the other parts need from the first layer, by name.

        ``map{i}``: M, or P and N (n, O, H, W); ``mean{i}``: their means (n, O) for
        ``signal=pre, reduce=mean``; ``pool_max``/``pool_min``: M max/min-pooled (pooled plan).
        """
        outs = self._first.run([f"{PREFIX}{o}" for o in self._outputs], {self._image_name: images})
        first = dict(zip(self._outputs, outs, strict=True))
        for i in range(self._n_maps):
            if f"mean{i}" in first:
                first[f"mean{i}"] = first[f"mean{i}"].reshape(len(images), -1)
        return first

    # (b) the recurrence
    def gains(
        self, images: np.ndarray, points: Sequence[GridPoint]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Final gains ``(g⁺, g⁻)`` (C, n, O) of every configuration for ``images``."""
        return self._gains(self.first_layer(self._check(images)), points, len(images))

    def _gains(self, first, points, n_images) -> tuple[np.ndarray, np.ndarray]:
        shape = (n_images, self._target.weight.shape[0])
        if self._use_means:
            activity = self._mean_activity([first[f"mean{i}"] for i in range(self._n_maps)])
        else:
            activity = self._map_activity([first[f"map{i}"] for i in range(self._n_maps)])
        return simulate_gains(
            activity, points, shape, rule=self.options.rule, counter=self.options.counter
        )

    def _mean_activity(self, means: list[np.ndarray]) -> Activity:
        """mean(g⁺·P + g⁻·N + β) = g⁺·mean(P) + g⁻·mean(N) + β: no pass over the maps."""
        bias = self._bias

        def activity(gp: np.ndarray, gn: np.ndarray, need: np.ndarray) -> np.ndarray:
            total = gp * means[0]
            if len(means) == 2:
                total = total + gn * means[1]
            return total + bias if self._has_bias else total

        return activity

    def _map_activity(self, maps: list[np.ndarray]) -> Activity:
        """Activity from the maps, computed once per distinct (image, kernel, gains)."""

        def activity(gp: np.ndarray, gn: np.ndarray, need: np.ndarray) -> np.ndarray:
            s = np.zeros(gp.shape, np.float32)
            _, image, kernel = np.nonzero(need)
            if len(image) == 0:
                return s
            keys = np.stack(
                [image.astype(np.float64), kernel.astype(np.float64), gp[need], gn[need]], axis=1
            )
            unique, inverse = np.unique(keys, axis=0, return_inverse=True)
            values = self._activity_rows(
                maps,
                unique[:, 0].astype(np.int64),
                unique[:, 1].astype(np.int64),
                unique[:, 2].astype(np.float32),
                unique[:, 3].astype(np.float32),
            )
            s[need] = values[inverse.reshape(-1)]
            return s

        return activity

    def _activity_rows(self, maps, image, kernel, gp, gn) -> np.ndarray:
        """s for each (image, kernel, g⁺, g⁻) row, by the graph's ops in float32."""
        positions = maps[0].shape[2] * maps[0].shape[3]
        block = max(1, _BLOCK_FLOATS // positions)
        out = np.empty(len(image), np.float32)
        reduce, act = self.options.reduce, self._target.numpy_activation
        for start in range(0, len(image), block):
            sl = slice(start, start + block)
            i, j = image[sl], kernel[sl]
            y = gp[sl, None, None] * maps[0][i, j]
            if len(maps) == 2:
                y = y + gn[sl, None, None] * maps[1][i, j]
            if self._has_bias:
                y = y + self._bias[j, None, None]
            if act is not None:
                with np.errstate(over="ignore"):  # exp overflow in sigmoid saturates correctly
                    y = act(y).astype(np.float32, copy=False)
            flat = y.reshape(len(i), -1)
            if reduce == Reduce.MEAN:
                out[sl] = flat.mean(axis=1, dtype=np.float32)
            elif reduce == Reduce.MAX:
                out[sl] = flat.max(axis=1)
            else:
                count = (flat > 0).sum(axis=1).astype(np.float32)
                out[sl] = count / np.float32(positions) - np.float32(0.5)
        return out

    # (c) the rest of the network, once per distinct gain vector
    def predict(
        self,
        images: np.ndarray | LazyImages,
        points: Sequence[GridPoint],
        *,
        progress: bool | None = None,
    ) -> np.ndarray:
        """The model's first output for every configuration: shape (C, N, *output).

        The images are processed a chunk at a time (:meth:`chunk_size`): the first layer,
        the gains and the rest of the network of one chunk, then the next, so memory stays
        bounded whatever N is. Only the outputs are kept for all images: C·N·classes floats
        (240 configurations x 3,000 images x 2 classes: 5.8 MB), which the scores need whole
        (ROC-AUC ranks every image).

        Args:
            images: a batch in the model's layout (float32), or a
                :class:`~anan_onnx.evaluation.lazy_images.LazyImages` read chunk by chunk.
            points: the configurations.
            progress: show a tqdm bar (default: on a terminal).
        """
        n_images = len(images)
        chunk = self.chunk_size(images.shape)
        result: np.ndarray | None = None
        self.stats = {"images": n_images, "configs": len(points), "rest_rows": 0}
        bar = _progress(progress, n_images)
        try:
            for start, part in iter_batches(images, chunk):
                part = self._check(part)
                first = self.first_layer(part)
                gp, gn = self._gains(first, points, len(part))
                out = self._rest_of_network(part, first, gp, gn, bar)
                if result is None:
                    result = np.empty((len(points), n_images, *out.shape[2:]), out.dtype)
                result[:, start : start + len(part)] = out
                # else this chunk's arrays are still held while the next chunk is read
                del part, first, gp, gn, out
        finally:
            if bar is not None:
                bar.close()
        if result is None:
            raise AnanError("no images to run the grid on: the batch is empty")
        return result

    def _rest_of_network(self, images, first, gp, gn, bar) -> np.ndarray:
        """Runs the rest once per distinct (image, final gains); returns (C, n, *output)."""
        n_configs, n_images, n_kernels = gp.shape
        two = self._n_maps == 2
        vectors = np.concatenate([gp, gn], axis=2) if two else gp  # (C, n, O or 2O)
        rows_image: list[int] = []
        rows_gains, where = [], []
        for i in range(n_images):
            unique, inverse = np.unique(vectors[:, i], axis=0, return_inverse=True)
            where.append(inverse.reshape(-1) + len(rows_image))
            rows_image += [i] * len(unique)
            rows_gains.append(unique)
        image_of_row = np.asarray(rows_image)
        gains = np.concatenate(rows_gains)[:, :, None, None]
        self.stats["rest_rows"] += len(image_of_row)
        outputs = []
        for start in range(0, len(image_of_row), self.batch_size):
            sl = slice(start, start + self.batch_size)
            outputs.append(self._run_rest(images, first, image_of_row[sl], gains[sl]))
            if bar is not None:
                bar.update(n_images * len(outputs[-1]) / len(image_of_row))
        rows = np.concatenate(outputs)
        return rows[np.stack(where, axis=1)]  # (C, n): the row of each (config, image)

    def _run_rest(self, images, first, idx, gains) -> np.ndarray:
        n_kernels = self._target.weight.shape[0]
        feeds: dict[str, np.ndarray] = {}
        if self.plan == "pooled":
            feeds[f"{PREFIX}pool_max"] = first["pool_max"][idx]
            # the min-pooled map is only read where a gain is negative (b > 1)
            any_negative = bool((gains < 0).any())
            feeds[f"{PREFIX}pool_min"] = (
                first["pool_min"][idx] if any_negative else feeds[f"{PREFIX}pool_max"]
            )
            feeds[f"{PREFIX}gain0"] = gains
        else:
            for i in range(self._n_maps):
                feeds[f"{PREFIX}map{i}"] = first[f"map{i}"][idx]
                feeds[f"{PREFIX}gain{i}"] = gains[:, i * n_kernels : (i + 1) * n_kernels]
        if self._rest_reads_image:
            feeds[self._image_name] = images[idx]
        return self._rest.run([self._rest_output], feeds)[0]

    def _check(self, images: np.ndarray) -> np.ndarray:
        return check_batch(images, self._image_shape, name="images")

    def chunk_size(self, shape: Sequence[int]) -> int:
        """Images per chunk for a batch of ``shape``: ``batch_size``, fewer when their
        first-layer outputs would pass ~64 MB. It does not depend on the number of images,
        so neither does the memory; a distributed engine cuts its shards at multiples of it
        so that every image is computed in the same chunk as here."""
        out_channels = self._target.weight.shape[0]
        dims = [int(d) for d in shape[1:]]
        pixels = int(np.prod(dims)) // max(1, min(dims))  # H·W: the channel axis is smallest
        per_image = out_channels * pixels * (self._n_maps + 1)
        return max(1, min(self.batch_size, _CHUNK_FLOATS // max(per_image, 1)))


def _progress(progress: bool | None, total: int) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    # disable=None: no bar when stderr is not a terminal, unless asked for explicitly
    return tqdm(
        total=total,
        unit="img",
        desc="grid",
        leave=False,
        disable=None if progress is None else False,
        bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}]",
    )
