"""The preprocessing recorded at conversion: what the caller must do to a decoded image,
read from the model where it says, given by the user, or assumed (docs/preprocessing.md).

Order of precedence, per field: given by the user (``--scale``, ``--mean``/``--std``,
``--preprocess``, ``--channel-order``, ``--resize``, ``--aspect``, ``--layout``), then what
an anan-onnx base model already records, then read from the model (its size, its layout,
its own leading scaling: :mod:`anan_onnx.runtime.own_scaling`), then assumed (the
keras.applications convention named after the model, else 1/255, RGB, bilinear, stretch).

Example:
    >>> request = PreprocessRequest(preset="torch")
    >>> [round(v, 6) for v in request.affine()[1]]
    [-2.117904, -2.035714, -1.804444]
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from anan_onnx import metadata as _metadata
from anan_onnx.choices import Layout
from anan_onnx.errors import AnanError
from anan_onnx.runtime.inputs import (
    ASPECTS,
    CHANNEL_ORDERS,
    RESIZES,
    InputSpec,
    Numbers,
    channel_numbers,
    layout_of_shape,
    parse_numbers,
)
from anan_onnx.runtime.own_scaling import own_scaling
from anan_onnx.runtime.presets import PRESETS, Preset, mean_std_affine

__all__ = [
    "KERAS_APPLICATION_MODES",
    "PRESETS",
    "Preset",
    "PreprocessRequest",
    "mean_std_affine",
    "resolve",
]

#: keras.applications models whose preprocessing is a ``preprocess_input`` outside the
#: model, by the Keras model name (``model.name``) their constructors give.
KERAS_APPLICATION_MODES: tuple[tuple[str, str], ...] = (
    (r"vgg(16|19)|resnet(50|101|152)", "caffe"),
    (r"densenet(121|169|201)", "torch"),
    (
        r"mobilenet(v2)?_[\d.]+_\d+|resnet(50|101|152)v2|xception|inception_v3"
        r"|inception_resnet_v2|nasnet_(mobile|large)",
        "tf",
    ),
)


@dataclasses.dataclass(frozen=True)
class PreprocessRequest:
    """What the user asked for; ``None`` = not given (read or assumed instead).

    ``mean``/``std`` are in pixel units (0-255; ``x = (pixel - mean) / std``) and exclude
    ``scale``/``offset``; ``preset`` names one of :data:`PRESETS`.
    """

    layout: str | None = None
    scale: Numbers | None = None
    offset: Numbers | None = None
    mean: Numbers | None = None
    std: Numbers | None = None
    preset: str | None = None
    channel_order: str | None = None
    resize: str | None = None
    aspect: str | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise AnanError(
                f"unknown preprocessing preset {self.preset!r}: pass one of {', '.join(PRESETS)}"
            )
        ways = [
            name
            for name, given in (
                ("--preprocess", self.preset is not None),
                ("--scale/--offset", self.scale is not None or self.offset is not None),
                ("--mean/--std", self.mean is not None or self.std is not None),
            )
            if given
        ]
        if len(ways) > 1:
            raise AnanError(
                f"{' and '.join(ways)} both set the pixel scaling: pass only one of them"
            )
        _refuse_fractions(self.mean, self.std)

    def affine(self) -> tuple[Numbers, Numbers] | None:
        """The requested ``(scale, offset)``, or ``None`` when none was given."""
        if self.preset is not None:
            preset = PRESETS[self.preset]
            return mean_std_affine(preset.mean, preset.std)
        if self.mean is not None or self.std is not None:
            return mean_std_affine(
                self.mean if self.mean is not None else 0.0,
                self.std if self.std is not None else 1.0,
            )
        if self.scale is not None or self.offset is not None:
            return (
                self.scale if self.scale is not None else _metadata.DEFAULT_SCALE,
                self.offset if self.offset is not None else 0.0,
            )
        return None

    def order(self) -> str | None:
        """The requested channel order (``--channel-order``, else the preset's)."""
        if self.channel_order is not None:
            return self.channel_order
        return PRESETS[self.preset].channel_order if self.preset is not None else None


def _refuse_fractions(mean: Numbers | None, std: Numbers | None) -> None:
    """mean/std are pixel units; fractions of 1 (torchvision's 0.485, 0.229) are refused,
    not silently taken as pixel values 255 times too small."""
    m = np.abs(np.atleast_1d(np.asarray(mean if mean is not None else 0.0, np.float64)))
    s = np.atleast_1d(np.asarray(std if std is not None else 255.0, np.float64))
    if (mean is not None and 0 < m.max() <= 1) or (std is not None and s.max() < 1):
        raise AnanError(
            "--mean and --std are in pixel units (0-255), these look like fractions of 1: "
            "multiply them by 255 (ImageNet: --mean 123.675,116.28,103.53 "
            "--std 58.395,57.12,57.375), or pass --preprocess torch"
        )


@dataclasses.dataclass
class Resolved:
    """The metadata values of :func:`resolve`, where each came from, and why."""

    values: dict[str, object]
    sources: dict[str, str]
    note: str = ""

    def metadata(self) -> dict[str, object]:
        out = dict(self.values)
        out[_metadata.PREPROCESS_FROM] = json.dumps(self.sources)
        out[_metadata.PREPROCESS_NOTE] = self.note
        return out


def resolve(
    model: onnx.ModelProto, request: PreprocessRequest, training: Mapping[str, Any] | None = None
) -> Resolved:
    """The preprocessing to record for ``model`` (metadata values) and their sources.

    Args:
        model: the base model (its ``anan.*`` metadata, if any, counts as recorded).
        request: what the user gave.
        training: the model's training record (``training.json``, see
            :mod:`anan_onnx.training_record`): its ``input`` (scale, resize, color, layout)
            is read as the model's own facts, below what the model itself records.

    Raises:
        AnanError: a request that does not fit the model (e.g. 3 means for 1 channel).
    """
    trained, trained_sources = _training_input(training)
    recorded = {**trained, **_metadata.read_metadata(model)}
    before = {**trained_sources, **(_metadata.preprocess_sources(recorded) or {})}
    dims = _input_dims(model)
    sources: dict[str, str] = {}
    layout = _layout(request, recorded, before, dims, sources)
    h, w, c = (dims[1], dims[2], dims[3]) if layout == Layout.NHWC else (dims[2], dims[3], dims[1])
    values: dict[str, object] = {"layout": layout}
    sized = all(isinstance(d, int) for d in (h, w, c))
    if sized:
        values.update(height=h, width=w, channels=c)
        sources.update(size="read", channels="read")
    own = own_scaling(model, layout, c) if isinstance(c, int) else None
    keras_mode = _keras_mode(recorded.get("keras_name", ""))
    note = _affine(request, recorded, before, own, keras_mode, values, sources)
    order = request.order()
    if order is not None:
        values["channel_order"], sources["channel_order"] = order, "given"
    elif "channel_order" in recorded:
        values["channel_order"] = recorded["channel_order"]
        sources["channel_order"] = before.get("channel_order", "assumed")
    elif sources.get("scale") == "assumed" and keras_mode is not None:
        values["channel_order"] = PRESETS[keras_mode].channel_order
        sources["channel_order"] = "assumed"
    else:
        values["channel_order"], sources["channel_order"] = CHANNEL_ORDERS[0], "assumed"
    for key, default in (("resize", RESIZES[0]), ("aspect", ASPECTS[0])):
        given = getattr(request, key)
        if given is not None:
            values[key], sources[key] = given, "given"
        else:
            values[key] = recorded.get(key, default)
            sources[key] = before.get(key, "assumed")
    text = _as_text(values)
    if sized:  # the one check of every value: InputSpec's
        text.update(InputSpec.from_metadata({k: str(v) for k, v in text.items()}).to_metadata())
    return Resolved(text, sources, note)


def _as_text(values: dict[str, object]) -> dict[str, object]:
    out = dict(values)
    for key in ("scale", "offset"):
        value = out[key]
        if isinstance(value, tuple):
            out[key] = ",".join(repr(float(v)) for v in value)
        else:
            out[key] = repr(float(value))  # type: ignore[arg-type]
    return out


def _layout(request, recorded, before, dims, sources) -> str:
    if request.layout is not None:
        layout, sources["layout"] = request.layout.upper(), "given"
    elif "layout" in recorded:
        layout, sources["layout"] = recorded["layout"].upper(), before.get("layout", "assumed")
    else:
        layout, certain = layout_of_shape(dims)
        keras = "keras_convs" in recorded  # a Keras export: NHWC by construction
        sources["layout"] = "read" if keras or certain else "assumed"
    if layout not in Layout.ALL:
        raise AnanError(f"layout must be NHWC or NCHW, got {layout!r}")
    return layout


def _affine(request, recorded, before, own, keras_mode, values, sources) -> str:
    """Sets scale/offset in ``values`` and ``sources``; returns the note to record."""
    given = request.affine()
    own_scale = own.pixel_scale() if own is not None else None
    # a recorded scale that was itself only assumed yields to what the graph says
    assumed = before.get("scale", "assumed") == "assumed" and own_scale is not None
    if given is not None or ("scale" in recorded and not assumed):
        if given is not None:
            values["scale"], values["offset"] = given
            source, note = "given", ""
        else:
            values["scale"] = parse_numbers(recorded["scale"])
            values["offset"] = parse_numbers(recorded.get("offset", "0"))
            source = before.get("scale", "assumed")
            note = recorded.get(_metadata.PREPROCESS_NOTE, "")
        if own is not None:  # counts first: the chain is compared channel by channel
            for key in ("scale", "offset"):
                values[key] = channel_numbers(key, values[key], len(own.scale))
        problem = own.contradiction(values["scale"], values["offset"]) if own else None
        if problem:
            warnings.warn(problem, UserWarning, stacklevel=4)
    elif own_scale is not None:
        values["scale"], values["offset"] = own_scale, 0.0
        source = "read"
        layers = _keras_first_layers(recorded)
        note = f"the model scales its input itself ({layers or own.describe()})"  # type: ignore[union-attr]
    else:
        mode = keras_mode if own is None else None
        affine = mean_std_affine(*_preset_mean_std(mode)) if mode else None
        values["scale"], values["offset"] = affine or (_metadata.DEFAULT_SCALE, 0.0)
        source = "assumed"
        note = (
            f"keras.applications {recorded['keras_name']} takes preprocess_input mode "
            f"{mode!r} ({PRESETS[mode].about})"
            if mode
            else ""
        )
        layers = _keras_first_layers(recorded)
        if own is not None or layers:
            warnings.warn(
                f"the model starts with its own scaling ({layers or own.describe()}) but "  # type: ignore[union-attr]
                "whether it expects pixels 0-255 or 0-1 cannot be told from its graph: "
                "assuming 1/255; pass --preprocess raw (pixels 0-255) or --scale to record "
                "the right one",
                UserWarning,
                stacklevel=4,
            )
    sources["scale"] = sources["offset"] = source
    return note


def _preset_mean_std(mode: str) -> tuple[Numbers, Numbers]:
    return PRESETS[mode].mean, PRESETS[mode].std


def _keras_mode(name: str) -> str | None:
    for pattern, mode in KERAS_APPLICATION_MODES:
        if re.fullmatch(pattern, name):
            return mode
    return None


def _keras_first_layers(recorded: dict[str, str]) -> str:
    """The scaling layers before the first convolution of a Keras export, in words."""
    try:
        before = json.loads(recorded.get("keras_before", "{}"))
    except ValueError:
        return ""
    layers: list[object] = next(iter(before.values()), []) if isinstance(before, dict) else []
    scaling = [str(x) for x in layers if str(x).startswith(("Rescaling", "Normalization"))]
    return ", ".join(scaling)


def _training_input(training: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, str]]:
    """The preprocessing a training record states, as metadata values, all ``read``."""
    facts = (training or {}).get("input")
    if not isinstance(facts, dict):
        return {}, {}
    values: dict[str, str] = {}
    for key, name, choices in (
        ("layout", "layout", Layout.ALL),
        ("channel_order", "color", CHANNEL_ORDERS),
        ("resize", "resize", RESIZES),
    ):
        if str(facts.get(name, "")) in choices:
            values[key] = str(facts[name])
    scale, offset = facts.get("scale"), facts.get("offset", 0.0)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (scale, offset)):
        values.update(scale=repr(float(scale)), offset=repr(float(offset)))  # type: ignore[arg-type]
        where = Path(str((training or {}).get("record_file", "training.json"))).name
        values[_metadata.PREPROCESS_NOTE] = f"as the model was trained ({where})"
    return values, {k: "read" for k in values if k != _metadata.PREPROCESS_NOTE}


def _input_dims(model: onnx.ModelProto) -> list[int | str]:
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs[:4])
        raise AnanError(
            f"the model has {len(inputs)} inputs ({names}): ANAN supports CNNs with one image "
            "input; export a single-input model"
        )
    dims = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in inputs[0].type.tensor_type.shape.dim
    ]
    if len(dims) != 4:
        guess = {3: " (a 1-D convolution model?)", 5: " (a 3-D convolution model?)"}
        raise AnanError(
            f"the model input has shape {dims}{guess.get(len(dims), '')}: ANAN supports 2-D "
            "image CNNs, whose input is a 4-D batch (N, C, H, W) or (N, H, W, C)"
        )
    # (a batch of 0 is left to free_fixed_batch: some exporters write it for "any")
    if any(isinstance(d, int) and d < (0 if i == 0 else 1) for i, d in enumerate(dims)):
        raise AnanError(
            f"the model input has shape {dims}: a dimension below 1 is no image's; fix the "
            "model's input shape"
        )
    return dims
