"""Named preprocessing conventions (``--preprocess``) and the mean/std form of a pixel
scaling. Data and numpy only, so that the command line can list them without loading onnx.

Example:
    >>> mean_std_affine(*PRESETS["tf"][:2])
    (0.00784313725490196, -1.0)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.runtime.inputs import Numbers

__all__ = ["PRESETS", "Preset", "mean_std_affine"]


class Preset(NamedTuple):
    """A named preprocessing convention, in pixel units (pixels 0-255 in ``channel_order``):
    ``x = (pixel - mean) / std``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str
    about: str


_IMAGENET_MEAN = (0.485, 0.456, 0.406)  # fractions of 1, RGB (torchvision)
_IMAGENET_STD = (0.229, 0.224, 0.225)
#: The conventions of keras.applications' ``preprocess_input`` modes, and two plain ones.
PRESETS: dict[str, Preset] = {
    "tf": Preset((127.5,), (127.5,), "RGB", "x = pixel / 127.5 - 1 (keras.applications 'tf')"),
    "torch": Preset(
        tuple(m * 255 for m in _IMAGENET_MEAN),
        tuple(s * 255 for s in _IMAGENET_STD),
        "RGB",
        "x = (pixel / 255 - ImageNet mean) / std, RGB (keras.applications 'torch')",
    ),
    "caffe": Preset(
        (103.939, 116.779, 123.68),  # B, G, R
        (1.0,),
        "BGR",
        "x = pixel - ImageNet mean, BGR (keras.applications 'caffe')",
    ),
    "raw": Preset((0.0,), (1.0,), "RGB", "x = pixel (0-255): the model scales its input itself"),
    "unit": Preset((0.0,), (255.0,), "RGB", "x = pixel / 255 (0-1)"),
}


def mean_std_affine(mean: Numbers, std: Numbers) -> tuple[Numbers, Numbers]:
    """``(scale, offset)`` of ``x = (pixel - mean) / std`` (pixel units): ``1/std`` and
    ``-mean/std``, one number or one per channel.

    Example:
        >>> mean_std_affine(127.5, 127.5)
        (0.00784313725490196, -1.0)
    """
    m = np.atleast_1d(np.asarray(mean, np.float64))
    s = np.atleast_1d(np.asarray(std, np.float64))
    if np.any(s == 0):
        raise AnanError(f"std must not be 0, got {std}: pass the standard deviation per channel")
    if m.size > 1 and s.size > 1 and m.size != s.size:
        raise AnanError(f"mean has {m.size} values and std {s.size}: pass one, or one per channel")
    scale, offset = np.broadcast_arrays(1.0 / s, -m / s)
    return _numbers(scale), _numbers(offset)


def _numbers(values: np.ndarray) -> Numbers:
    flat = [float(v) for v in np.ravel(values)]
    return flat[0] if len(set(flat)) == 1 else tuple(flat)


