"""The model input: its description (:class:`InputSpec`) and checks of user-given batches.

A model's input is described by an :class:`InputSpec`: layout, size, channels, how the
decoded image is resized (``resize``, ``aspect``), the order of its colour channels
(``channel_order``) and the affine pixel preprocessing ``x[c] = pixel[c] * scale[c] +
offset[c]`` (one number, or one per channel). anan-onnx stores it in the ONNX
``metadata_props`` so that any runtime can prepare images the way the model was trained;
docs/preprocessing.md is the schema.

Example:
    >>> spec = InputSpec("NHWC", 32, 32, 3)
    >>> spec.batch_shape(8)
    (8, 32, 32, 3)
    >>> InputSpec.from_metadata(spec.to_metadata()) == spec
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from anan_onnx._public import public
from anan_onnx.choices import Layout
from anan_onnx.errors import AnanError
from anan_onnx.limits import input_elements, positive_int
from anan_onnx.metadata import DEFAULT_SCALE, PREPROCESS_KEYS

__all__ = [
    "ASPECTS",
    "CHANNEL_ORDERS",
    "LAYOUTS",
    "NCHW_TO_NHWC",
    "NHWC_TO_NCHW",
    "RESIZES",
    "InputSpec",
    "Numbers",
    "channel_numbers",
    "check_batch",
    "guess_layout",
    "layout_of_shape",
    "parse_number",
    "parse_numbers",
]

LAYOUTS: tuple[str, ...] = Layout.ALL
#: Orders of the decoded image's colour channels along the model's channel axis; the first
#: is the default (what a missing ``channel_order`` key means).
CHANNEL_ORDERS: tuple[str, ...] = ("RGB", "BGR")
#: Interpolations of the resize to the model's size (Pillow's filters of the same names);
#: the first is the default. Runtimes that cannot reproduce one must refuse the model.
RESIZES: tuple[str, ...] = ("bilinear", "nearest", "bicubic")
#: How the image's aspect ratio is handled: ``stretch`` (default) resizes the whole image;
#: ``crop`` first cuts the largest centred region of the model's aspect ratio.
ASPECTS: tuple[str, ...] = ("stretch", "crop")
#: axes that turn an NHWC batch into NCHW, and back
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)

#: One number for every channel, or one per channel (in the model's channel order).
Numbers = float | tuple[float, ...]


@public
@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How raw images become the input tensor of a model.

    Attributes:
        layout: ``"NHWC"`` (Keras) or ``"NCHW"``.
        height: input height in pixels.
        width: input width in pixels.
        channels: 1 (grayscale) or 3 (colour).
        scale: pixel multiplier; the input is ``pixel * scale + offset`` with pixels 0-255.
            One float, or a tuple of ``channels`` floats in the model's channel order.
        offset: added after scaling (e.g. -1.0 with ``scale=1/127.5`` for [-1, 1] inputs);
            one float or one per channel, like ``scale``.
        channel_order: ``"RGB"`` or ``"BGR"``: the decoded colours along the channel axis
            (ignored for 1 channel).
        resize: interpolation to the model size, one of :data:`RESIZES`.
        aspect: ``"stretch"`` or ``"crop"`` (centre crop to the model's aspect first).

    Example:
        >>> InputSpec("NCHW", 28, 28, 1, scale=1.0).batch_shape(2)
        (2, 1, 28, 28)
        >>> InputSpec("NHWC", 8, 8, 3, scale=(1.0, 2.0, 3.0)).affine()[0]
        array([1., 2., 3.], dtype=float32)
    """

    layout: str
    height: int
    width: int
    channels: int
    scale: Numbers = DEFAULT_SCALE
    offset: Numbers = 0.0
    channel_order: str = CHANNEL_ORDERS[0]
    resize: str = RESIZES[0]
    aspect: str = ASPECTS[0]

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise AnanError(f"layout must be NHWC or NCHW, got {self.layout!r}: pass one of them")
        for name in ("height", "width"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        channels = positive_int("channels", self.channels)
        if channels not in (1, 3):
            raise AnanError(
                f"channels must be 1 (grayscale) or 3 (RGB), got {channels}: "
                "anan-onnx only prepares grayscale and RGB images"
            )
        object.__setattr__(self, "channels", channels)
        input_elements((self.height, self.width, channels), "the model input")
        for name in ("scale", "offset"):
            object.__setattr__(self, name, channel_numbers(name, getattr(self, name), channels))
        if 0 in (self.scale if isinstance(self.scale, tuple) else (self.scale,)):
            raise AnanError("scale must not be 0 (every input would be equal): pass e.g. 1/255")
        for name, choices in (
            ("channel_order", CHANNEL_ORDERS),
            ("resize", RESIZES),
            ("aspect", ASPECTS),
        ):
            object.__setattr__(self, name, _choice(name, getattr(self, name), choices))

    @classmethod
    def from_metadata(cls, md: dict[str, str]) -> InputSpec:
        """Reads a spec from string metadata (the ``anan.*`` keys without the prefix).

        Args:
            md: mapping with the keys ``layout``, ``height``, ``width``, ``channels``,
                ``scale`` and ``offset`` (one number or a comma list, one per channel),
                optionally ``channel_order``, ``resize``, ``aspect`` (default RGB,
                bilinear, stretch); other keys are ignored.

        Raises:
            AnanError: a key is missing or its value is not valid.

        Example:
            >>> InputSpec.from_metadata({"layout": "NHWC", "height": "64", "width": "64",
            ...     "channels": "3", "scale": "0.00392156862745098", "offset": "0"}).height
            64
        """
        keys = PREPROCESS_KEYS[:6]
        missing = [k for k in keys if k not in md]
        if missing:
            raise AnanError(
                f"model metadata lacks the preprocessing keys {', '.join(missing)}: convert the "
                "model with anan-onnx, or give the input layout, size, channels and scaling"
            )
        values: dict[str, object] = {"layout": str(md["layout"]).strip().upper()}
        for key in ("height", "width", "channels"):
            values[key] = _parse(key, md[key], int)
        for key in ("scale", "offset"):
            values[key] = _parse(key, md[key], float)
        for key in PREPROCESS_KEYS[6:]:
            if key in md:
                values[key] = _recorded_choice(key, md[key])
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_shape(
        cls,
        shape: Sequence[object],
        *,
        layout: str | None = None,
        scale: Numbers = DEFAULT_SCALE,
        offset: Numbers = 0.0,
    ) -> InputSpec | None:
        """A spec from a 4-D input shape such as ``[None, 64, 64, 3]``, or ``None`` when the
        height, width or channels are not fixed (or are no image's).

        The layout, unless given, is where the 1/3-sized axis sits (see :func:`guess_layout`).

        Example:
            >>> InputSpec.from_shape(["batch", 64, 64, 3]).describe()
            'NHWC 64x64x3, x = pixel * 0.00392157 + 0'
        """
        dims = list(shape)
        if len(dims) != 4:
            return None
        layout = (layout or guess_layout(dims)).upper()
        nhwc = layout == Layout.NHWC
        h, w, c = (dims[1], dims[2], dims[3]) if nhwc else (dims[2], dims[3], dims[1])
        if not all(isinstance(d, int) and d > 0 for d in (h, w, c)) or c not in (1, 3):
            return None
        return cls(layout, h, w, c, scale=scale, offset=offset)  # type: ignore[arg-type]

    def to_metadata(self) -> dict[str, str]:
        """The spec as string metadata; ``repr`` of floats keeps them exact.

        Example:
            >>> InputSpec("NHWC", 8, 8, 1, scale=0.5).to_metadata()["scale"]
            '0.5'
            >>> InputSpec("NHWC", 8, 8, 3, offset=(-1.0, 0.0, 1.0)).to_metadata()["offset"]
            '-1.0,0.0,1.0'
        """
        return {
            "layout": self.layout,
            "height": str(self.height),
            "width": str(self.width),
            "channels": str(self.channels),
            "scale": _numbers_text(self.scale),
            "offset": _numbers_text(self.offset),
            "channel_order": self.channel_order,
            "resize": self.resize,
            "aspect": self.aspect,
        }

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, offset)`` as float32 arrays of ``channels`` values each, for
        ``pixels * scale + offset`` on channel-last pixels in the model's channel order."""
        shape = (self.channels,)
        return (
            np.broadcast_to(np.asarray(self.scale, np.float32), shape).copy(),
            np.broadcast_to(np.asarray(self.offset, np.float32), shape).copy(),
        )

    def batch_shape(self, n: int) -> tuple[int, ...]:
        """Shape of a batch of ``n`` images in this layout."""
        if self.layout == Layout.NHWC:
            return (n, self.height, self.width, self.channels)
        return (n, self.channels, self.height, self.width)

    def describe(self) -> str:
        """One line for reports, e.g. ``NHWC 64x64x3, x = pixel * 0.00392157 + 0``; the
        channel order, resize and aspect are named where they are not the defaults."""
        text = (
            f"{self.layout} {self.height}x{self.width}x{self.channels}, "
            f"x = pixel * {_numbers_short(self.scale, '.6g')} + "
            f"{_numbers_short(self.offset, 'g')}"
        )
        return ", ".join([text, *self.non_defaults()])

    def non_defaults(self) -> list[str]:
        """The channel order, resize and aspect where they are not RGB, bilinear, stretch,
        in words (``["channels BGR", "aspect crop"]``)."""
        return [
            f"{name} {value}"
            for name, value, default in (
                ("channels", self.channel_order, CHANNEL_ORDERS[0]),
                ("resize", self.resize, RESIZES[0]),
                ("aspect", self.aspect, ASPECTS[0]),
            )
            if value != default and not (name == "channels" and self.channels == 1)
        ]


def parse_number(text: str) -> float:
    """A finite number written as a decimal or a fraction (``0.5``, ``1/255``, ``-1``).

    Raises:
        AnanError: anything else, naming the text.

    Example:
        >>> parse_number("1/127.5")
        0.00784313725490196
    """
    raw = str(text).strip()
    try:
        if "/" in raw:
            top, _, bottom = raw.partition("/")
            value = float(Fraction(top.strip()) / Fraction(bottom.strip()))
        else:
            value = float(raw)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise AnanError(f"invalid number {raw!r}: write e.g. 0.5 or 1/255") from None
    if not math.isfinite(value):
        raise AnanError(f"invalid number {raw!r}: it must be finite")
    return value


def parse_numbers(text: str) -> Numbers:
    """One number, or a comma list of them (one per channel), each as :func:`parse_number`.

    Example:
        >>> parse_numbers("1/255")
        0.00392156862745098
        >>> parse_numbers("0.5, 1/4, 2")
        (0.5, 0.25, 2.0)
    """
    parts = str(text).split(",")
    if len(parts) == 1:
        return parse_number(parts[0])
    return tuple(parse_number(p) for p in parts)


#: The sizes a channel axis may have when a layout is read from a shape.
_CHANNEL_SIZES = (1, 3, 4)


def guess_layout(dims: Sequence[object]) -> str:
    """NHWC or NCHW for a 4-D shape: where a channel-sized axis (1, 3 or 4) sits."""
    return layout_of_shape(dims)[0]


def layout_of_shape(dims: Sequence[object]) -> tuple[str, bool]:
    """``(layout, certain)`` of a 4-D shape: the layout where exactly one of axes 1 and 3
    is channel-sized (1, 3 or 4), ``certain``; else NHWC when axis 3 is, NCHW otherwise,
    not certain. The one reading of a layout from a shape.

    Example:
        >>> layout_of_shape([None, 3, 32, 32]), layout_of_shape([None, 3, 8, 3])
        (('NCHW', True), ('NHWC', False))
    """
    on_1, on_3 = dims[1] in _CHANNEL_SIZES, dims[3] in _CHANNEL_SIZES
    if on_1 != on_3:
        return (Layout.NHWC if on_3 else Layout.NCHW), True
    return (Layout.NHWC if on_3 else Layout.NCHW), False



def channel_numbers(name: str, value: object, channels: int) -> Numbers:
    """A finite float, or a tuple of ``channels`` finite floats (a 1-list is one float);
    another count is refused, naming ``name``."""
    if isinstance(value, (list, tuple, np.ndarray)):
        items = tuple(_finite(name, v) for v in np.asarray(value, dtype=object).ravel())
        if len(items) == 1:
            return items[0]
        if len(items) != channels:
            raise AnanError(
                f"{name} has {len(items)} values but the model has {channels} channel"
                f"{'s' if channels != 1 else ''}: pass one {name}, or one per channel"
            )
        return items
    return _finite(name, value)


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise AnanError(f"{name} must be a number, got {value!r}: pass e.g. {name}=1/255")
    value = float(value)
    if not math.isfinite(value):
        raise AnanError(f"{name} must be finite, got {value}: pass a finite number")
    return value


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    text = str(value)
    wanted = text.upper() if name == "channel_order" else text.lower()
    if wanted not in choices:
        raise AnanError(f"{name} must be one of {', '.join(choices)}, got {text!r}")
    return wanted


def _recorded_choice(key: str, raw: str) -> str:
    choices = {"channel_order": CHANNEL_ORDERS, "resize": RESIZES, "aspect": ASPECTS}[key]
    try:
        return _choice(key, raw, choices)
    except AnanError:
        raise AnanError(
            f"model metadata {key}={raw!r} is not one anan-onnx reproduces "
            f"({', '.join(choices)}): re-convert the model with one of them"
        ) from None


def _numbers_text(value: Numbers) -> str:
    return ",".join(repr(v) for v in value) if isinstance(value, tuple) else repr(value)


def _numbers_short(value: Numbers, fmt: str) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(format(v, fmt) for v in value) + ")"
    return format(value, fmt)


def _parse(key: str, raw: str, kind: type) -> object:
    # the one number parser: "1/255" reads as the options and metadata elsewhere do
    try:
        parsed = parse_numbers(raw)
    except AnanError as exc:  # its reason: not a number, or not finite
        reason = str(exc).rpartition(": ")[2]
        raise AnanError(
            f"model metadata {key}={raw!r} is not a number ({reason}): re-convert the model "
            "with anan-onnx"
        ) from None
    numbers = list(parsed) if isinstance(parsed, tuple) else [parsed]
    if kind is int and len(numbers) != 1:
        raise AnanError(
            f"model metadata {key}={raw!r} is not a number: re-convert the model with anan-onnx"
        )
    if kind is int:
        if not numbers[0].is_integer():
            raise AnanError(
                f"model metadata {key}={raw!r} is not an integer: re-convert the model with "
                "anan-onnx"
            )
        return int(numbers[0])
    return numbers[0] if len(numbers) == 1 else tuple(numbers)


# --- user-given arrays --------------------------------------------------------------------

Dim = int | str | None


@public
def check_batch(
    batch: object, spec_or_shape: InputSpec | Sequence[Dim], *, name: str = "batch"
) -> np.ndarray:
    """Validates a user-given array as input for a model and returns it as float32.

    Checks, in order: 4 dimensions (a single 3-D image gets a batch axis), a float dtype
    (float16/float64 are cast; integer or bool pixels are refused because they are not
    scaled yet), the model's fixed dimensions (with a hint when the array is in the other
    layout), and finite values.

    Args:
        batch: the array (anything ``np.asarray`` accepts).
        spec_or_shape: an :class:`InputSpec` (the batch axis is then free) or the model's
            input shape, where ``None``, negative numbers and strings are dynamic dims.
        name: what to call the array in messages (e.g. the file it came from).

    Returns:
        C-contiguous float32 array of rank 4.

    Raises:
        AnanError: the array does not fit; the message says how to fix it.

    Example:
        >>> check_batch(np.zeros((32, 32, 3)), InputSpec("NHWC", 32, 32, 3)).shape
        (1, 32, 32, 3)
    """
    expected, layout = _expected_shape(spec_or_shape)
    try:
        x = np.asarray(batch)
    except ValueError as e:  # ragged nested lists
        raise AnanError(f"{name} is not a rectangular array ({e}): pass a numpy array") from None
    if x.ndim == len(expected) - 1:
        x = x[None]
    if x.ndim != len(expected):
        raise AnanError(
            f"{name} has {x.ndim} dimensions {tuple(x.shape)} but the model needs "
            f"{len(expected)} {_show(expected, layout)}: reshape it"
        )
    x = _as_float32(x, name, spec_or_shape)
    _check_shape(x.shape, expected, layout, name)
    if x.shape[0] == 0:
        raise AnanError(f"{name} is empty (0 images): pass at least one image")
    _check_finite(x, name)
    return np.ascontiguousarray(x)


def _expected_shape(spec_or_shape: InputSpec | Sequence[Dim]) -> tuple[tuple[Dim, ...], str]:
    """(shape with None for free dims, layout or '' when unknown)."""
    if isinstance(spec_or_shape, InputSpec):
        spec = spec_or_shape
        return (None, *spec.batch_shape(0)[1:]), spec.layout
    dims: tuple[Dim, ...] = tuple(
        int(d) if isinstance(d, (int, np.integer)) and d >= 0 else None for d in spec_or_shape
    )
    layout = ""
    if len(dims) == 4:  # for the hint only: a layout only where the shape says it
        guessed, certain = layout_of_shape(dims)
        layout = guessed if certain else ""
    return dims, layout


def _show(shape: Sequence[Dim], layout: str = "") -> str:
    text = "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"
    return f"{text} {layout}" if layout else text


def _as_float32(x: np.ndarray, name: str, spec_or_shape: object) -> np.ndarray:
    if x.dtype == np.float32:
        return x
    if x.dtype.kind == "f":
        return x.astype(np.float32)
    if x.dtype.kind in "iub":
        if isinstance(spec_or_shape, InputSpec):
            spec = spec_or_shape
            how = (
                f"x.astype('float32') * {_numbers_short(spec.scale, '.6g')} + "
                f"{_numbers_short(spec.offset, 'g')}"
            )
        else:
            how = "x.astype('float32') * scale, as in training"
        raise AnanError(
            f"{name} has integer pixels ({x.dtype}): scale them to float32 first ({how})"
        )
    raise AnanError(f"{name} has dtype {x.dtype}, not numbers: pass a float32 array")


def _check_shape(got: tuple[int, ...], expected: tuple[Dim, ...], layout: str, name: str) -> None:
    if _matches(got, expected):
        return
    problem = f"{name} shape {tuple(got)} does not match the model input {_show(expected, layout)}"
    if len(got) == 4:
        for axes, was, want in ((NCHW_TO_NHWC, "NCHW", "NHWC"), (NHWC_TO_NCHW, "NHWC", "NCHW")):
            if layout in ("", want) and _matches(_permute(got, axes), expected):
                raise AnanError(
                    f"{problem}: it looks like {was}; transpose to {want} (x.transpose{axes})"
                )
        channel_axis = {"NHWC": 3, "NCHW": 1}.get(layout)
        if channel_axis is not None:
            spatial = [a for a in (1, 2, 3) if a != channel_axis]
            same_size = all(expected[a] is None or got[a] == expected[a] for a in spatial)
            want_c, got_c = expected[channel_axis], got[channel_axis]
            if same_size and want_c is not None and got_c != want_c:
                fix = "pass RGB images" if want_c == 3 else "pass grayscale images"
                raise AnanError(
                    f"{name} has {got_c} channel{'s' if got_c != 1 else ''}, shape {tuple(got)}, "
                    f"but the model needs {want_c}, {_show(expected, layout)}: {fix}"
                )
            if not same_size:
                h, w = (expected[a] for a in spatial)
                raise AnanError(
                    f"{problem}: resize the images to {h}x{w} (load_image does it for files)"
                )
    if expected[0] is not None and _matches(got[1:], expected[1:]):
        # A model exported with a fixed batch size: the caller has to split the batch.
        raise AnanError(
            f"{name} has {got[0]} images but the model takes exactly {expected[0]} per run: "
            f"pass batches of {expected[0]}, or export the model with a dynamic batch"
        )
    raise AnanError(f"{problem}: reshape or resize it to the model input")


def _permute(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[a] for a in axes)


def _matches(got: tuple[int, ...], expected: tuple[Dim, ...]) -> bool:
    return len(got) == len(expected) and all(
        e is None or g == e for g, e in zip(got, expected, strict=True)
    )


def _check_finite(x: np.ndarray, name: str) -> None:
    finite = np.isfinite(x)
    if finite.all():
        return
    n_nan = int(np.isnan(x).sum())
    n_inf = int(x.size - finite.sum()) - n_nan
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    raise AnanError(
        f"{name} has {n_nan} NaN and {n_inf} Inf values (first at index {first}, image "
        f"{first[0]}): fix the preprocessing or drop those images"
    )
