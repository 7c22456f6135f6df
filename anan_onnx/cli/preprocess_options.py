"""The preprocessing options of ``convert`` (and the number type that ``tune`` shares):
``--preprocess``, ``--scale``/``--offset``, ``--mean``/``--std``, ``--channel-order``,
``--resize``, ``--aspect``, ``--layout``. docs/preprocessing.md explains them.

Every number option takes decimals or fractions (``1/255``) and, per channel, a comma list
(``--mean 123.675,116.28,103.53``), through the one parser
:func:`anan_onnx.runtime.inputs.parse_numbers`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from anan_onnx.choices import Layout
from anan_onnx.cli.arg_types import argparse_type
from anan_onnx.runtime.inputs import ASPECTS, CHANNEL_ORDERS, RESIZES, Numbers, parse_numbers

__all__ = [
    "FIELD_OPTIONS",
    "add_preprocess_options",
    "given_preprocess_options",
    "numbers",
    "preprocess_request",
]

#: The options that change each preprocessing field (``preprocess_from``'s keys).
FIELD_OPTIONS = {
    "layout": "--layout",
    "size": "the model's input shape",
    "channels": "the model's input shape",
    "scale": "--preprocess, --scale, --mean/--std",
    "offset": "--preprocess, --offset, --mean/--std",
    "channel_order": "--channel-order, --preprocess",
    "resize": "--resize",
    "aspect": "--aspect",
}


#: Each preprocessing option by its argparse destination.
_OPTIONS = {
    "preprocess": "--preprocess",
    "scale": "--scale",
    "offset": "--offset",
    "mean": "--mean",
    "std": "--std",
    "channel_order": "--channel-order",
    "resize": "--resize",
    "aspect": "--aspect",
    "layout": "--layout",
}


def given_preprocess_options(args: argparse.Namespace) -> list[str]:
    """The preprocessing options given in ``args`` (for commands that cannot honour them)."""
    return [flag for dest, flag in _OPTIONS.items() if getattr(args, dest, None) is not None]


#: An argparse type: one number or a comma list of them, fractions allowed.
numbers: Callable[[str], Numbers] = argparse_type(parse_numbers)


def add_preprocess_options(p: argparse.ArgumentParser) -> None:
    """Adds the preprocessing options to ``p`` (convert's)."""
    from anan_onnx.runtime.presets import PRESETS

    g = p.add_argument_group(
        "preprocessing recorded in the model (default: read from the model where it says, "
        "else assumed; docs/preprocessing.md)"
    )
    g.add_argument(
        "--preprocess",
        choices=tuple(PRESETS),
        help="a convention: "
        + "; ".join(f"{name}: {preset.about}" for name, preset in PRESETS.items()),
    )
    g.add_argument(
        "--scale",
        type=numbers,
        metavar="S",
        help="x = pixel * S + OFFSET, pixels 0-255: one number or one per channel "
        "(e.g. 1/255 or 1/58.395,1/57.12,1/57.375)",
    )
    g.add_argument("--offset", type=numbers, metavar="O", help="added after --scale (default 0)")
    g.add_argument(
        "--mean",
        type=numbers,
        metavar="M",
        help="x = (pixel - M) / STD, in pixel units 0-255, one or one per channel "
        "(ImageNet: 123.675,116.28,103.53)",
    )
    g.add_argument(
        "--std",
        type=numbers,
        metavar="STD",
        help="with --mean, in pixel units 0-255 (ImageNet: 58.395,57.12,57.375; default 1)",
    )
    g.add_argument(
        "--channel-order",
        type=str.upper,
        choices=CHANNEL_ORDERS,
        help="colour order the model expects (default RGB; caffe models: BGR)",
    )
    g.add_argument(
        "--resize", choices=RESIZES, help="interpolation to the model size (default bilinear)"
    )
    g.add_argument(
        "--aspect",
        choices=ASPECTS,
        help="stretch the whole image (default) or crop its centre to the model's aspect",
    )
    g.add_argument("--layout", choices=Layout.ALL, help="input layout (default: read)")


def preprocess_request(args: argparse.Namespace):
    """The :class:`~anan_onnx.convert.preprocessing.PreprocessRequest` of parsed ``args``."""
    from anan_onnx.convert.preprocessing import PreprocessRequest

    return PreprocessRequest(
        layout=args.layout,
        scale=args.scale,
        offset=args.offset,
        mean=args.mean,
        std=args.std,
        preset=args.preprocess,
        channel_order=args.channel_order,
        resize=args.resize,
        aspect=args.aspect,
    )
