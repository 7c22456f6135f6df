"""Inference with onnxruntime: ``Session`` runs a base or ANAN model, numpy in, numpy out.

Needs only numpy, onnx and onnxruntime (and Pillow for image files): no TensorFlow.

Example:
    >>> sess = Session("out/model.anan.onnx")          # doctest: +SKIP
    >>> probs = sess.predict(batch)                     # (N, 1) for a sigmoid head
    >>> sess.params                                     # AnanParams(k=4, mu=2, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from anan_onnx import metadata as _metadata
from anan_onnx.errors import AnanError, first_line
from anan_onnx.params import AnanParams

if TYPE_CHECKING:  # inference does not import onnx (it costs a third of a second)
    import onnx

    from anan_onnx.runtime.inputs import InputSpec

__all__ = ["Session", "providers_for"]

_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


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
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = _optimization_level(optimization)
        serialize = getattr(model, "SerializeToString", None)  # an onnx.ModelProto
        source = serialize() if serialize else _path(model)
        try:
            self._session = ort.InferenceSession(source, options, providers=providers_for(provider))
        except AnanError:
            raise
        except Exception as exc:
            raise AnanError(
                f"onnxruntime cannot load the model ({first_line(exc)}): check the file"
            ) from None
        custom = self._session.get_modelmeta().custom_metadata_map
        self.metadata = {k[len("anan.") :]: v for k, v in custom.items() if k.startswith("anan.")}
        self.params = AnanParams.from_strings(self.metadata) if self.is_anan else None
        graph_inputs = self._session.get_inputs()
        self.input_name = graph_inputs[0].name
        self.input_shape = tuple(graph_inputs[0].shape)
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
        """The recorded preprocessing as an ``InputSpec``, or ``None`` if not recorded."""
        from anan_onnx.runtime.inputs import InputSpec

        if "height" not in self.metadata:
            return None
        return InputSpec.from_metadata(self.metadata)

    def run(self, batch: np.ndarray, **parameters: float) -> list[np.ndarray]:
        """Runs all outputs on a batch already in the model's layout and dtype.

        Keyword arguments set the inputs of a tunable export (``anan_mu=3.0`` ...).
        """
        feeds: dict[str, np.ndarray] = {self.input_name: batch}
        for name, value in parameters.items():
            if name not in self.parameter_inputs:
                raise AnanError(f"the model has no parameter input {name!r}: export with --tunable")
            feeds[name] = np.asarray(value, np.float32)
        return self._session.run(self.output_names, feeds)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The model's first output for a numpy batch (checked: shape, dtype, NaN/Inf)."""
        from anan_onnx.runtime.inputs import check_batch

        return self.run(check_batch(batch, self.input_shape))[0]

    def predict_images(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Loads, resizes and scales image files as recorded, then predicts."""
        from anan_onnx.runtime.image_files import load_images

        spec = self.input_spec()
        if spec is None:
            raise AnanError(
                "the model records no input size: predict .npy batches, or convert with anan-onnx"
            )
        batch, _, _ = load_images(list(paths), spec)
        return self.predict(batch)


def _path(model: str | Path) -> str:
    path = Path(model)
    if path.is_dir():
        raise AnanError(f"{path} is a directory: pass an .onnx model file")
    if not path.is_file():
        raise AnanError(f"{path}: no such model file: check the path")
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
