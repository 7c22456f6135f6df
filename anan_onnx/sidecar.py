"""The sidecar: a model's anan.* metadata as a JSON file beside it, for bindings without
metadata access.

onnxruntime-web and onnxruntime-node expose no ``metadata_props``, so a page or a Node.js
program cannot read how to preprocess images or which ANAN parameters a model carries.
``write_sidecar`` writes them into ``MODEL.anan.json`` (for ``catsdogs.anan.onnx``:
``catsdogs.anan.json``; for ``model.onnx``: ``model.anan.json``)::

    {"format": "anan-sidecar/1",
     "model": "catsdogs.anan.onnx",
     "metadata": {"k": "4", "mu": "2", ...},          # every anan.* key, as stored
     "params": {"k": 4, "mu": 2, "a": 1.05, ...},      # typed AnanParams, or null (base)
     "preprocess": {"layout": "NHWC", "height": 128, "width": 128, "channels": 3,
                    "scale": 0.00392156862745098, "offset": 0.0,    # or one per channel
                    "channel_order": "RGB", "resize": "bilinear", "aspect": "stretch",
                    "preprocess_from": {"scale": "assumed", ...}},  # or null

     "classes": ["cat", "dog"],                        # anan.classes, or null
     "inputs": [{"name": "input", "shape": ["batch", 128, 128, 3], "dtype": "float32"}],
     "outputs": [{"name": "probs", "shape": ["batch", 1], "dtype": "float32"}]}

``scale`` and ``offset`` are numbers, or lists of one number per channel (in the model's
channel order): the model input is ``pixel[c] * scale[c] + offset[c]`` with pixels 0-255
in ``channel_order``, resized as ``resize``/``aspect`` say (docs/preprocessing.md).
``preprocess_from`` (informational; ``null`` for models converted before it existed) says
which fields were read from the model, given by the user or assumed.

A dynamic dimension is its name (a string) or null. JSON has no NaN or infinity, so a
model whose metadata would need one is refused (:class:`AnanError`), never written.
Needs onnx only (no TensorFlow, no onnxruntime).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import onnx

from anan_onnx import metadata as _metadata
from anan_onnx.errors import AnanError, first_line
from anan_onnx.model_io import load_onnx, write_bytes_atomic
from anan_onnx.onnx_build import numpy_dtype
from anan_onnx.params import AnanParams
from anan_onnx.runtime.inputs import InputSpec

__all__ = ["FORMAT", "sidecar", "sidecar_path", "write_sidecar"]

FORMAT = "anan-sidecar/1"


def sidecar_path(model_path: str | Path) -> Path:
    """Where the sidecar of ``model_path`` goes: ``.onnx`` (and a ``.anan`` before it)
    replaced by ``.anan.json``, in the same folder."""
    path = Path(model_path)
    stem = path.name.removesuffix(".onnx").removesuffix(".ort").removesuffix(".anan")
    return path.with_name(f"{stem}.anan.json")


def sidecar(model: onnx.ModelProto | str | Path, *, name: str | None = None) -> dict[str, Any]:
    """The sidecar document of ``model`` (a ModelProto or an ``.onnx`` path).

    Args:
        model: the model, or its path (its file name becomes ``"model"``).
        name: the file name to record for a ModelProto (default: ``null``).

    Raises:
        AnanError: the metadata is invalid (e.g. a non-finite parameter, or ``anan.classes``
            that is not a JSON list of strings).
    """
    if not isinstance(model, onnx.ModelProto):
        name = name or Path(model).name
        model = load_onnx(model)
    md = _metadata.read_metadata(model)
    document: dict[str, Any] = {
        "format": FORMAT,
        "model": name,
        "metadata": md,
        "params": AnanParams.from_strings(md).as_dict() if _metadata.is_anan(md) else None,
        "preprocess": _preprocess(md),
        "classes": _classes(md),
        "inputs": [_value_info(v) for v in _graph_inputs(model.graph)],
        "outputs": [_value_info(v) for v in model.graph.output],
    }
    _check_finite(document)
    return document


def write_sidecar(model_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Writes the sidecar of the model at ``model_path`` atomically; returns its path.

    ``out_path`` defaults to :func:`sidecar_path` (beside the model).
    """
    out = Path(out_path) if out_path is not None else sidecar_path(model_path)
    text = json.dumps(sidecar(model_path), indent=2, allow_nan=False) + "\n"
    write_bytes_atomic(text.encode("utf-8"), out)
    return out


def _preprocess(md: dict[str, str]) -> dict[str, Any] | None:
    if "height" not in md:  # a model converted from something without a fixed input size
        return None
    spec = InputSpec.from_metadata(md)
    document: dict[str, Any] = dataclasses.asdict(spec)
    for key in ("scale", "offset"):  # JSON: a number, or a list of one per channel
        if isinstance(document[key], tuple):
            document[key] = list(document[key])
    document[_metadata.PREPROCESS_FROM] = _metadata.preprocess_sources(md)
    return document


def _classes(md: dict[str, str]) -> list[str] | None:
    raw = md.get("classes")
    if raw is None:
        return None
    try:
        classes = json.loads(raw)
    except ValueError as exc:
        raise AnanError(
            f"metadata anan.classes is not JSON ({first_line(exc)}): store a JSON list of names"
        ) from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise AnanError(
            f"metadata anan.classes must be a JSON list of strings, got {raw[:80]!r}: "
            'store e.g. ["cat", "dog"]'
        )
    return classes


def _graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds: a tunable model's parameters (anan_k ...) have defaults
    (initializers) and are left out, as onnxruntime leaves them out of its inputs."""
    initialized = {i.name for i in graph.initializer}
    return [v for v in graph.input if v.name not in initialized]


def _value_info(value: onnx.ValueInfoProto) -> dict[str, Any]:
    tensor = value.type.tensor_type
    shape: list[int | str | None] | None = None
    if tensor.HasField("shape"):
        shape = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in tensor.shape.dim
        ]
    dtype = (
        numpy_dtype(tensor.elem_type).name if tensor.elem_type else None
    )
    return {"name": value.name, "shape": shape, "dtype": dtype}


def _check_finite(value: object, where: str = "sidecar") -> None:
    """Refuses NaN and infinities anywhere in the document (JSON cannot hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise AnanError(f"{where} would be {value}: the model's metadata holds a non-finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")
