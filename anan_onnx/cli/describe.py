"""Model facts in words, for ``convert`` and ``inspect``: the recorded preprocessing, where
each of its fields came from, and the size on disk (external data included). numpy/onnx
only: no TensorFlow.

Example:
    >>> describe_input({"layout": "NHWC", "height": "64", "width": "64", "channels": "3",
    ...                 "scale": "0.00392156862745098", "offset": "0"})
    'NHWC 64x64x3, input = pixel (0-255) * 1/255 + 0'
"""

from __future__ import annotations

from pathlib import Path

from anan_onnx.metadata import PREPROCESS_NOTE, SOURCES, preprocess_sources

__all__ = ["SOURCE_WORDS", "describe_input", "describe_sources", "model_bytes"]

#: How each provenance value reads in ``convert`` and ``inspect``.
SOURCE_WORDS = {"read": "read from the model", "given": "given", "assumed": "assumed"}


def describe_input(meta: dict[str, str]) -> str:
    """The recorded preprocessing in words, e.g. ``NHWC 128x128x3, pixel * 1/255 + 0``;
    a channel order, resize and aspect other than RGB, bilinear, stretch are named."""
    from anan_onnx.runtime.inputs import InputSpec

    if "height" not in meta:
        return f"{meta.get('layout', '?')}, size not recorded (the model's input is dynamic)"
    spec = InputSpec.from_metadata(meta)
    if isinstance(spec.offset, tuple):
        offset = "+ (" + ", ".join(f"{v:g}" for v in spec.offset) + ")"
    else:
        offset = f"{'-' if spec.offset < 0 else '+'} {abs(spec.offset):g}"
    text = (
        f"{spec.layout} {spec.height}x{spec.width}x{spec.channels}, input = pixel (0-255) * "
        f"{_pixel_scales(spec.scale)} {offset}"
    )
    return ", ".join([text, *spec.non_defaults()])


def describe_sources(meta: dict[str, str]) -> list[str]:
    """One line per provenance (``read from the model: layout, size ...``), with the options
    that change the assumed fields, then the recorded reason; ``[]`` for a model converted
    before provenance was recorded."""
    from anan_onnx.cli.preprocess_options import FIELD_OPTIONS

    sources = preprocess_sources(meta)
    if sources is None:
        return []
    lines = []
    for source in SOURCES:
        fields = [f for f, s in sources.items() if s == source]
        if not fields:
            continue
        if source == "assumed":
            fields = [f"{f} ({FIELD_OPTIONS.get(f, '?')})" for f in fields]
        lines.append(f"{SOURCE_WORDS[source]}: {', '.join(fields)}")
    if meta.get(PREPROCESS_NOTE):
        lines.append(f"why: {meta[PREPROCESS_NOTE]}")
    return lines


def _pixel_scales(scale: float | tuple[float, ...]) -> str:
    """``1/255`` for 0.00392156862745098 (how a pixel scale is usually written); a tuple
    in parentheses."""
    if isinstance(scale, tuple):
        return "(" + ", ".join(_pixel_scales(v) for v in scale) + ")"
    inverse = 1 / scale if scale else 0.0
    if abs(inverse - round(inverse)) < 1e-9 and round(inverse) not in (0, 1, -1):
        return f"1/{inverse:g}"
    return f"{scale:g}"


def model_bytes(path: Path) -> int:
    """The model file plus the external data files its tensors refer to."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    tensors = [*model.graph.initializer]
    tensors += [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    locations = {
        entry.value
        for t in tensors
        if t.data_location == onnx.TensorProto.EXTERNAL
        for entry in t.external_data
        if entry.key == "location"
    }
    extra = (path.parent / loc for loc in locations)
    return path.stat().st_size + sum(f.stat().st_size for f in extra if f.is_file())
