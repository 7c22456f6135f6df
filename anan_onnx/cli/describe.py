"""Model facts in words, for ``convert`` and ``inspect``: the recorded preprocessing and
the size on disk (external data included). numpy/onnx only: no TensorFlow.

Example:
    >>> describe_input({"layout": "NHWC", "height": "64", "width": "64", "channels": "3",
    ...                 "scale": "0.00392156862745098", "offset": "0"})
    'NHWC 64x64x3, input = pixel (0-255) * 1/255 + 0'
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["describe_input", "model_bytes"]


def describe_input(meta: dict[str, str]) -> str:
    """The recorded preprocessing in words, e.g. ``NHWC 128x128x3, pixel * 1/255 + 0``."""
    if "height" not in meta:
        return f"{meta.get('layout', '?')}, size not recorded (the model's input is dynamic)"
    scale, offset = float(meta["scale"]), float(meta["offset"])
    inverse = 1 / scale if scale else 0.0
    shown = f"1/{inverse:g}" if abs(inverse - round(inverse)) < 1e-9 else f"{scale:g}"
    return (
        f"{meta['layout']} {meta['height']}x{meta['width']}x{meta['channels']}, "
        f"input = pixel (0-255) * {shown} {'-' if offset < 0 else '+'} {abs(offset):g}"
    )


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
