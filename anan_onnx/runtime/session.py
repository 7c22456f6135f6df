"""Inference with onnxruntime: ``Session`` runs a base or ANAN model, numpy in, numpy out.

Needs only numpy, onnx and onnxruntime (and Pillow for image files): no TensorFlow.

Example:
    >>> from anan_onnx.testing import VARIANTS, build_cnn, random_batch
    >>> model = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=2, a=1.5)).anan
    >>> sess = Session(model)                           # or Session("out/model.anan.onnx")
    >>> sess.predict(random_batch(VARIANTS["plain"], 3)).shape   # (N, 1) for a sigmoid head
    (3, 2)
    >>> sess.params.k
    2
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from anan_onnx import limits
from anan_onnx import metadata as _metadata
from anan_onnx._public import public
from anan_onnx.errors import AnanError, first_line
from anan_onnx.files import open_regular
from anan_onnx.params import AnanParams
from anan_onnx.runtime.inputs import Dim, InputSpec, check_batch, parse_numbers

if TYPE_CHECKING:  # inference does not import onnx (it costs a third of a second)
    import onnx

__all__ = ["Session", "default_batch_size", "providers_for", "run_fixed_batch"]

_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


@public
def providers_for(name: str) -> list[str]:
    """onnxruntime providers for ``'cpu'``, ``'cuda'``, ``'tensorrt'`` or an EP's full name.

    Raises:
        AnanError: the provider is not in this onnxruntime build.
    """
    provider = _PROVIDERS.get(name.lower(), name)
    available = ort.get_available_providers()
    if provider not in available:
        hint = " (pip install onnxruntime-gpu)" if provider != "CPUExecutionProvider" else ""
        raise AnanError(
            f"execution provider {name!r} is not available in this onnxruntime{hint}; "
            f"available: {', '.join(available)}"
        )
    return [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]


@public
class Session:
    """An onnxruntime session for a base or ANAN model, with its recorded metadata.

    Args:
        model: path of an ``.onnx`` file, or an ``onnx.ModelProto``.
        provider: ``'cpu'`` (default), ``'cuda'``, or an execution provider name.
        threads: intra-op threads (default: onnxruntime's choice).
        optimization: onnxruntime graph optimisation level name (``'all'``, ``'basic'``...).

    Attributes:
        metadata: the ``anan.*`` metadata, prefix removed.
        params: the ANAN parameters, or ``None`` for a base model.
        input_name, input_shape, output_names: the graph's interface.
    """

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        *,
        provider: str = "cpu",
        threads: int | None = None,
        optimization: str = "all",
    ) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = limits.thread_count(threads)
        options.graph_optimization_level = _optimization_level(optimization)
        # The memory pattern plans one block per input shape at the second run of that shape,
        # while the arena keeps the first run's chunks: +374 MiB for 256 images of 128x128
        # (docs/scale.md §8). Without it the arena reuses its chunks: the same outputs, no
        # measurable CPU cost (docs/scale.md). Measured on the CPU only: other providers keep
        # onnxruntime's default.
        providers = providers_for(provider)
        options.enable_mem_pattern = providers != ["CPUExecutionProvider"]
        serialize = getattr(model, "SerializeToString", None)  # an onnx.ModelProto
        source = serialize() if serialize else _path(model)
        # Kept to read a raw model's own input scaling (input_spec), only when asked for.
        self._model: onnx.ModelProto | str = model if serialize else source  # type: ignore[assignment]
        self._read_scaling: tuple[InputSpec, str] | None = None
        try:
            self._session = ort.InferenceSession(source, options, providers=providers)
        except AnanError:
            raise
        except Exception as exc:
            if not serialize:  # a Keras file gets "run anan-onnx convert first"
                from anan_onnx.model_io import require_onnx  # onnx: only on this error

                require_onnx(source)
            raise AnanError(
                f"onnxruntime cannot load the model ({first_line(exc)}): check the file"
            ) from None
        custom = self._session.get_modelmeta().custom_metadata_map
        self.metadata = {k[len("anan.") :]: v for k, v in custom.items() if k.startswith("anan.")}
        self.params = AnanParams.from_strings(self.metadata) if self.is_anan else None
        graph_inputs = self._session.get_inputs()
        self.input_name = graph_inputs[0].name
        self.input_shape = tuple(graph_inputs[0].shape)
        # export --raw-input: the graph takes uint8 pixels and scales them itself
        self.raw_input = graph_inputs[0].type == "tensor(uint8)"
        # A tunable export's anan_k, anan_mu ... are inputs with defaults (initializers):
        # onnxruntime lists those as overridable initializers, not as inputs.
        overridable = self._session.get_overridable_initializers()
        self.parameter_inputs = [i.name for i in overridable if i.name.startswith("anan_")]
        self.output_names = [o.name for o in self._session.get_outputs()]

    @property
    def is_anan(self) -> bool:
        """Whether the model carries ANAN parameters."""
        return _metadata.is_anan(self.metadata)

    @property
    def providers(self) -> list[str]:
        return self._session.get_providers()

    def input_spec(self) -> InputSpec | None:
        """The recorded preprocessing as an ``InputSpec``; for a model that records none (a
        raw ONNX export), one read from its input shape (``[?, 64, 64, 3]`` -> NHWC 64x64x3)
        and its own leading scaling chain, as ``convert`` reads them (a graph that starts
        with ``Mul 1/255`` is fed pixels 0-255), else pixel * 1/255; either warns, naming
        what was read or assumed. ``None`` when the shape does not fix the size."""
        if "height" in self.metadata:
            return self._agreeing(InputSpec.from_metadata(self.metadata))
        recorded = "scale" in self.metadata
        spec = InputSpec.from_shape(
            self.input_shape,
            layout=self.metadata.get("layout"),
            scale=parse_numbers(self.metadata.get("scale", repr(_metadata.DEFAULT_SCALE))),
            offset=parse_numbers(self.metadata.get("offset", "0")),
        )
        if spec is None:
            return None
        how = "recorded scale" if recorded else "1/255 assumed"
        if not recorded:
            if self._read_scaling is None:  # the graph is read once, however often asked
                self._read_scaling = self._own_scaling(spec)
            spec, how = self._read_scaling
        warnings.warn(
            f"the model records no preprocessing: using {spec.describe()} (size and layout "
            f"from its input shape, {how}); convert it with anan-onnx (--layout, --scale, "
            "--offset) to record the right one",
            UserWarning,
            stacklevel=2,
        )
        return spec

    def _own_scaling(self, spec: InputSpec) -> tuple[InputSpec, str]:
        """``spec`` with the pixel scale the graph's own leading scaling chain expects (the
        reading ``convert`` makes, :mod:`anan_onnx.runtime.own_scaling`), and in words
        where the scale came from; the 1/255 default when the graph does not say."""
        import dataclasses

        import onnx  # only for a model that records no preprocessing

        from anan_onnx.runtime.own_scaling import own_scaling

        model = self._model if isinstance(self._model, onnx.ModelProto) else onnx.load(self._model)
        own = own_scaling(model, spec.layout, spec.channels)
        pixel_scale = own.pixel_scale() if own is not None else None
        if own is None:
            return spec, "1/255 assumed"
        if pixel_scale is None:
            return spec, f"1/255 assumed: its own scaling ({own.describe()}) does not say"
        read = dataclasses.replace(spec, scale=pixel_scale, offset=0.0)
        return read, f"scale read from its own scaling ({own.describe()})"

    def _agreeing(self, spec: InputSpec) -> InputSpec:
        """``spec`` if the recorded size fits the graph's input; refused before any image
        is prepared at the recorded size otherwise (height=width=4000 on a 128x128 graph)."""
        graph = list(self.input_shape[1:])
        recorded = list(spec.batch_shape(1)[1:])
        if len(graph) != len(recorded) or any(
            isinstance(g, int) and g > 0 and g != r for g, r in zip(graph, recorded, strict=True)
        ):
            raise AnanError(
                f"the model records a {spec.describe()} input but its graph takes "
                f"{list(self.input_shape)}: the metadata contradicts the model; re-convert it "
                "with anan-onnx"
            )
        return spec

    def input_bytes(self, spec: InputSpec | None = None) -> int:
        """Bytes of one float32 input: from the graph's fixed sizes, else ``spec``'s."""
        dims = [d for d in self.input_shape[1:] if isinstance(d, int) and d > 0]
        if spec is not None and len(dims) < len(self.input_shape) - 1:
            dims = list(spec.batch_shape(1)[1:])
        return 4 * int(np.prod(dims, dtype=np.int64)) if dims else 4

    def checked_batch_size(self, value: object, spec: InputSpec | None = None) -> int:
        """A batch size given by the user, checked against the resource limits (its images
        and their memory, :mod:`anan_onnx.limits`) before anything is allocated."""
        return limits.batch_size(value, self.input_bytes(spec), "--batch-size")

    def run(self, batch: np.ndarray, **parameters: float) -> list[np.ndarray]:
        """Runs all outputs on a batch already in the model's layout and dtype.

        Keyword arguments set the inputs of a tunable export (``anan_mu=3.0`` ...).
        """
        if self.raw_input and batch.dtype != np.uint8:  # checked whole pixels (_checked)
            batch = batch.astype(np.uint8)
        feeds: dict[str, np.ndarray] = {self.input_name: batch}
        for name, value in parameters.items():
            if name not in self.parameter_inputs:
                raise AnanError(f"the model has no parameter input {name!r}: export with --tunable")
            feeds[name] = np.asarray(value, np.float32)
        return self._session.run(self.output_names, feeds)

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model was exported with (``convert --batch N``), or ``None``."""
        first = self.input_shape[0] if self.input_shape else None
        return int(first) if isinstance(first, int) and first > 0 else None

    def predict(
        self, batch: np.ndarray, *, batch_size: int | None = None, name: str = "batch"
    ) -> np.ndarray:
        """The model's first output for a numpy batch (checked: shape, dtype, NaN/Inf).

        The batch is run in chunks of ``batch_size`` images (default: all at once), so that
        a large array (e.g. a memory-mapped ``.npy``) never needs more than one chunk in
        memory. A model exported with a fixed batch N is always fed exactly N images per
        run; the last chunk is padded with copies of its last image, and the padding's
        outputs are dropped. The result does not depend on the chunk size.

        Args:
            batch: the inputs in the model's layout (one image without the batch axis too).
            batch_size: images per run (default: all; a fixed-batch model: its own size).
            name: what to call ``batch`` in messages (e.g. the file it came from).
        """
        shape = (None, *self.input_shape[1:]) if self.fixed_batch else self.input_shape
        if batch_size is not None:
            batch_size = limits.positive_int("batch_size", batch_size)
        if not isinstance(batch, np.ndarray):  # lists: checked (and made rectangular) first
            batch = check_batch(batch, shape, name=name)
        if batch.ndim == len(self.input_shape) - 1:
            batch = batch[None]
        n = len(batch) if batch.ndim else 0
        step = self.fixed_batch or batch_size or max(n, 1)
        if n <= step and not self.fixed_batch:
            return self.run(self._checked(batch, shape, name))[0]
        outputs = [
            self._run_padded(self._checked(batch[i : i + step], shape, name))
            for i in range(0, max(n, 1), step)
        ]
        return np.concatenate(outputs)

    def _checked(self, x: np.ndarray, shape: Sequence[Dim], name: str) -> np.ndarray:
        """``x`` checked by :func:`check_batch` (float32). A raw-input model's pixels
        (uint8, or prepared images: whole numbers 0-255) pass unscaled; :meth:`run` feeds
        them back as uint8."""
        if self.raw_input and x.dtype == np.uint8:
            x = x.astype(np.float32)
        checked = check_batch(x, shape, name=name)
        if self.raw_input and not _whole_pixels(checked):
            raise AnanError(
                f"{name} is not pixels 0-255 but this model (export --raw-input) takes uint8 "
                "NHWC pixels, unscaled: pass uint8 pixels"
            )
        return checked

    def _run_padded(self, x: np.ndarray) -> np.ndarray:
        """The first output for ``x``, padded to the fixed batch and trimmed back."""
        return run_fixed_batch(lambda b: self.run(b)[0], x, self.fixed_batch)

    def predict_images(
        self, paths: Sequence[str | Path], *, batch_size: int | None = None
    ) -> np.ndarray:
        """Loads, resizes and scales image files as recorded, then predicts.

        The files are streamed in batches of ``batch_size`` (default:
        :func:`default_batch_size`), so memory does not grow with the number of files.
        """
        from anan_onnx.runtime.image_files import iter_image_batches  # Pillow: files only

        spec = self.input_spec()
        if spec is None:
            raise AnanError(
                f"the model records no input size and its input shape {list(self.input_shape)} "
                "does not fix one: predict .npy batches, or convert with anan-onnx"
            )
        size = batch_size or self.default_batch_size()
        outputs = [
            self.predict(b.x) for b in iter_image_batches(list(paths), spec, batch_size=size)
        ]
        if not outputs:
            raise AnanError("no image files given: pass at least one image")
        return np.concatenate(outputs)

    def default_batch_size(self) -> int:
        """Images per run when none is given: see :func:`default_batch_size`."""
        return default_batch_size(self.input_shape, self.fixed_batch)


def run_fixed_batch(
    run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, fixed: int | None
) -> np.ndarray:
    """``run`` on ``x`` as a model exported with a fixed batch takes it: in runs of exactly
    ``fixed`` images, the last padded with copies of its last image and its padding's
    outputs dropped (``fixed`` None: ``x`` at once). Any engine's static shape then fits."""
    if fixed is None:
        return run(x)
    outputs = []
    for start in range(0, len(x), fixed):
        part = x[start : start + fixed]
        n = len(part)
        if n < fixed:
            part = np.concatenate([part, np.repeat(part[-1:], fixed - n, axis=0)])
        outputs.append(run(part)[:n])
    return np.concatenate(outputs)


def _whole_pixels(x: np.ndarray) -> bool:
    """Whether every value of ``x`` is a whole number 0-255 (a uint8 pixel)."""
    return bool(x.min() >= 0 and x.max() <= 255 and (x == np.round(x)).all())


#: Memory one batch may take, as a multiple of its input size: the ANAN graph keeps a few
#: first-layer maps per image (measured ~12x the input for the paper's CNN), so 16x.
_BATCH_MEMORY_FACTOR = 16
#: Most memory the default batch may take, and the largest default batch.
_BATCH_MEMORY_BUDGET = 512 * 2**20
_MAX_DEFAULT_BATCH = 256


def default_batch_size(input_shape: Sequence[object], fixed: int | None = None) -> int:
    """Images per run that keep one batch within about 512 MiB (or 1/8 of free memory).

    A fixed-batch model runs its own batch size; otherwise ``budget / (16 x input bytes)``,
    between 1 and 256. docs/limits.md.
    """
    if fixed:
        return fixed
    dims = [d for d in list(input_shape)[1:] if isinstance(d, int) and d > 0]
    per_image = 4 * _BATCH_MEMORY_FACTOR * max(1, int(np.prod(dims)) if dims else 1)
    budget = _BATCH_MEMORY_BUDGET
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        budget = min(budget, max(free // 8, 64 * 2**20))
    except (ValueError, OSError, AttributeError):  # not on every system
        pass
    return int(max(1, min(_MAX_DEFAULT_BATCH, budget // per_image)))


def _path(model: str | Path) -> str:
    path = Path(model)
    with open_regular(path, "model") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise AnanError(f"model {path} is empty: pass a saved .onnx model file")
    return str(path)


def _optimization_level(name: str) -> ort.GraphOptimizationLevel:
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if name not in levels:
        raise AnanError(f"optimization must be one of {', '.join(levels)}, got {name!r}")
    return levels[name]
