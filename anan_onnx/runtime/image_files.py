"""Image files to model input: read, convert, resize and scale them as an InputSpec says.

Example:
    >>> from anan_onnx.runtime.inputs import InputSpec
    >>> spec = InputSpec("NHWC", 32, 32, 3)
    >>> batch, loaded, skipped = load_images(["a.png"], spec)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from anan_onnx import limits
from anan_onnx._public import public
from anan_onnx.choices import Layout
from anan_onnx.errors import AnanError, first_line
from anan_onnx.files import open_regular
from anan_onnx.limits import positive_int
from anan_onnx.runtime.inputs import NHWC_TO_NCHW, InputSpec
from anan_onnx.runtime.progress import bar

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "ImageBatch",
    "check_image_file",
    "crop_box",
    "eight_bit",
    "iter_image_batches",
    "load_image",
    "load_images",
    "pixels_from_bytes",
    "pixels_from_pil",
    "read_pixels",
    "progress_bar",
    "to_model_input",
]

#: File name endings recognised as images (compared in lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)
#: Show a progress bar when loading more images than this.
PROGRESS_MIN = 200
#: Largest image accepted, in pixels (width x height): Pillow's own decompression-bomb
#: threshold (about 89.5 million, a 256 MiB RGBA buffer), but refused rather than warned
#: about. A 9500x9400 photo still fits; a 12000x12000 PNG (17 KB on disk, 780 MB decoded)
#: does not. ``None`` disables the check (trusted files only). docs/limits.md.
MAX_IMAGE_PIXELS: int | None = 89_478_485

_T = TypeVar("_T")


@public
def load_image(path: str | os.PathLike[str], spec: InputSpec) -> np.ndarray:
    """Loads one image file as model-ready pixels.

    The image is converted to RGB (``channels=3``) or grayscale (``channels=1``; alpha is
    dropped), centre-cropped to the model's aspect ratio when the spec says ``aspect="crop"``,
    resized to the spec's size with its interpolation (default bilinear) when its size
    differs, put in the spec's channel order (RGB or BGR), then scaled per channel:
    ``x = pixel * scale + offset`` (see :func:`pixels_from_pil`). EXIF orientation is not
    applied, as in Keras' ``load_img``.

    Args:
        path: image file (any format Pillow reads).
        spec: the model input description.

    Returns:
        float32 array of shape (height, width, channels), whatever ``spec.layout`` is.

    Raises:
        AnanError: the file is missing, not an image, or corrupt; the message names it.

    Example:
        >>> x = load_image("cat.jpg", InputSpec("NHWC", 64, 64, 3))  # doctest: +SKIP
        >>> x.shape, x.dtype  # doctest: +SKIP
        ((64, 64, 3), dtype('float32'))
    """
    return to_model_input(_read_pixels(Path(path), spec)[None], spec, layout="NHWC")[0]


def read_pixels(path: str | os.PathLike[str], spec: InputSpec) -> np.ndarray:
    """uint8 (H, W, C) pixels of the image file ``path``, converted and resized for
    ``spec`` (not scaled), with :func:`load_image`'s one-line errors."""
    return _read_pixels(Path(path), spec)


def pixels_from_bytes(data: bytes, spec: InputSpec, name: str) -> np.ndarray:
    """:func:`read_pixels` of an encoded image held in memory (e.g. read from an object
    store); ``name`` (its URI) is what the errors call it."""
    with _image_errors(name), _pixel_limit(name), Image.open(io.BytesIO(data)) as im:
        _check_size(im, name)
        return pixels_from_pil(im, spec, name=name)


def _read_pixels(path: Path, spec: InputSpec) -> np.ndarray:
    """uint8 (H, W, C) pixels of ``path`` converted and resized for ``spec``."""
    name = str(path)
    with (
        _image_errors(name),
        open_regular(path, "image") as f,
        _pixel_limit(name),
    ):
        limits.IMAGE_BYTES.check(os.fstat(f.fileno()).st_size, f"image {name}")
        with Image.open(f) as im:
            _check_size(im, name)
            return pixels_from_pil(im, spec, name=name)


def check_image_file(path: str | os.PathLike[str]) -> None:
    """Opens an image file's header as :func:`load_images` would, decoding no pixel.

    Raises the same one-line errors for a missing or irregular file, a file that is not an
    image, or one too large; corrupt pixel data is only found when the pixels are decoded.
    """
    name = str(path)
    with (
        _image_errors(name),
        open_regular(Path(path), "image") as f,
        _pixel_limit(name),
        Image.open(f) as im,
    ):
        _check_size(im, name)


@contextlib.contextmanager
def _image_errors(name: str) -> Iterator[None]:
    """Pillow's and the file system's errors while reading ``name``, as one AnanError."""
    try:
        yield
    except AnanError:
        raise
    except Image.DecompressionBombError:
        raise AnanError(_too_large(name)) from None
    except PermissionError as e:
        raise AnanError(
            f"image {name} cannot be read ({e.strerror}): check its permissions"
        ) from None
    except UnidentifiedImageError:
        raise AnanError(
            f"image {name} is not a readable image: remove it or convert it to PNG/JPEG"
        ) from None
    except MemoryError:
        raise AnanError(
            f"image {name} needs more memory than is available to decode: re-save it smaller"
        ) from None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, struct.error) as e:
        # Pillow reports truncated or corrupt data as OSError (SyntaxError, struct.error ...
        # for some plugins) when the pixels are decoded, after the header was read.
        raise AnanError(
            f"image {name} is corrupt or truncated ({first_line(e)}): remove it or re-save it"
        ) from None


@contextlib.contextmanager
def _pixel_limit(name: str) -> Iterator[None]:
    """Lets :func:`_check_size` apply :data:`MAX_IMAGE_PIXELS` for one open: Pillow's own
    check only warns below twice its limit and names no size above it. ``Image.open``
    reads the header only, so nothing large is decoded before the check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_size(im: Image.Image, name: str) -> None:
    # Pillow checks only some formats' sizes at open; check the declared size here, before
    # any pixel is decoded, for every format.
    width, height = im.size
    if MAX_IMAGE_PIXELS is not None and width * height > MAX_IMAGE_PIXELS:
        raise AnanError(_too_large(name, im.size))


def _too_large(name: str, size: tuple[int, int] | None = None) -> str:
    dims = f" ({size[0]}x{size[1]} pixels)" if size else ""
    return (
        f"image {name} is too large{dims}: more than {MAX_IMAGE_PIXELS:,} pixels, refused as a "
        "possible decompression bomb (docs/limits.md); resize it first"
    )


def pixels_from_pil(im: Image.Image, spec: InputSpec, *, name: str = "image") -> np.ndarray:
    """uint8 (H, W, C) pixels of a Pillow image converted and resized for ``spec``.

    Shared by files and by arrays (``.npz`` data sets) so both get the same preprocessing.
    Images of more than 8 bits per sample (16-bit, 32-bit integer, float) are first brought
    to their 8-bit rendering (see :func:`eight_bit`), so they give the same input as an 8-bit
    copy of the same picture. The steps, in this order (docs/preprocessing.md):

    1. convert to RGB or grayscale (``L``, Pillow's ITU-R 601-2 luma);
    2. ``aspect="crop"``: cut the largest centred box of the model's aspect ratio (its
       edges rounded to whole pixels, as :func:`crop_box` says);
    3. resize to the model size with Pillow's filter named by ``spec.resize``, only when
       the size differs;
    4. ``channel_order="BGR"``: reverse the colour channels.
    """
    im = eight_bit(im, name)
    mode = "RGB" if spec.channels == 3 else "L"
    if im.mode != mode:
        im = im.convert(mode)
    if spec.aspect == "crop":
        box = crop_box(im.size, (spec.width, spec.height))
        if box != (0, 0, *im.size):
            im = im.crop(box)
    if im.size != (spec.width, spec.height):
        im = im.resize((spec.width, spec.height), _FILTERS[spec.resize])
    pixels = np.asarray(im, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    elif spec.channel_order == "BGR":
        pixels = pixels[:, :, ::-1]
    return pixels


#: Pillow's filter for each :data:`~anan_onnx.runtime.inputs.RESIZES` name.
_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "bicubic": Image.Resampling.BICUBIC,
}


def crop_box(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest box of ``target``'s aspect ratio centred in an image of ``size`` (both
    ``(width, height)``), as Pillow's ``(left, top, right, bottom)``.

    The kept side is ``floor(side * ratio)`` pixels, and the margin is split with the
    extra pixel (if any) after it, so that every runtime can cut the same pixels.

    Example:
        >>> crop_box((200, 100), (64, 64))
        (50, 0, 150, 100)
        >>> crop_box((100, 101), (10, 10))
        (0, 0, 100, 100)
    """
    width, height = size
    tw, th = target
    if width * th > height * tw:  # too wide: keep the full height
        kept = max(1, height * tw // th)
        left = (width - kept) // 2
        return (left, 0, left + kept, height)
    kept = max(1, width * th // tw)
    top = (height - kept) // 2
    return (0, top, width, top + kept)


#: Modes Pillow converts to RGB/L itself with 8-bit values (alpha is dropped).
_EIGHT_BIT_MODES = frozenset(
    {"1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "HSV", "LA", "PA"}
)
#: Value ranges tried, smallest first, for samples whose range the file does not declare.
_RANGES = (1.0, 255.0, 65535.0)
_MARGIN = 1.05


def eight_bit(im: Image.Image, name: str = "image") -> Image.Image:
    """The image in a mode whose values are 0-255, scaled by its mode's range.

    Pillow's own ``convert`` clips 16-bit and float samples at 255 (a 16-bit PNG turns
    almost white). Here:

    * ``I;16*`` (16-bit files): the high byte, ``v >> 8`` -- what Pillow itself does with
      16-bit RGB PNGs and PPMs, and exact for 8-bit pictures stored as ``v * 257`` or
      ``v << 8``;
    * ``I`` (32-bit integer): 16-bit range for PNG and PPM files (Pillow's 16-bit gray);
      otherwise the samples carry no declared range, so 0-255 if every value fits, else
      0-65535 if every value fits;
    * ``F`` (float): 0-1 if every value fits (the usual float-image convention), else 0-255,
      else 0-65535; each rounded to the nearest 8-bit level. "Fits" allows 5 % of the range
      beyond either end (filters overshoot), clipped.

    Anything else that has no faithful 8-bit rendering (negative or non-finite samples, a
    range beyond 16 bits, ``LAB``, unknown modes) is refused with the mode named.

    Raises:
        AnanError: the mode cannot be rendered in 8 bits.
    """
    mode = im.mode
    if mode in _EIGHT_BIT_MODES:
        return im
    if mode == "La":  # premultiplied alpha: Pillow converts it only to LA
        return im.convert("LA")
    if mode.startswith("I;16"):
        values = np.asarray(im)
        if values.dtype.kind == "i":  # I;16S: signed samples
            return _from_range(values, name, mode)
        return Image.fromarray((values.astype(np.uint16) >> 8).astype(np.uint8), "L")
    if mode == "I" and (im.format or "") in ("PNG", "PPM"):
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise _refuse_mode(name, mode, values)
        return Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8), "L")
    if mode in ("I", "F") or mode.startswith(("I;32", "F;")):
        return _from_range(np.asarray(im), name, mode)
    raise AnanError(
        f"image {name} has mode {mode}, which anan-onnx cannot render as 8-bit gray or RGB: "
        "save it as an 8-bit or 16-bit grayscale or RGB image (PNG/JPEG)"
    )


def _from_range(values: np.ndarray, name: str, mode: str) -> Image.Image:
    """8-bit gray from samples scaled by the smallest range of :data:`_RANGES` they fit.

    The range is the smallest that holds the largest value; float samples may pass either end
    of it by 5 % (filters overshoot a little, and an image that used under 5 % of the next
    larger range would be black in it), clipped to 0-255.
    """
    if values.size == 0 or not np.isfinite(values).all():
        raise _refuse_mode(name, mode, values)
    low, top = float(values.min()), float(values.max())
    is_float = values.dtype.kind == "f"
    # integer samples are never 0-1 images, and are never filtered below 0
    ranges = _RANGES if is_float else _RANGES[1:]
    margin = _MARGIN if is_float else 1.0
    limit = next((r for r in ranges if top <= r * margin), None)
    if limit is None or low < -limit * (margin - 1):
        raise _refuse_mode(name, mode, values)
    scaled = np.rint(values.astype(np.float64) * (255.0 / limit))
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")


def _refuse_mode(name: str, mode: str, values: np.ndarray) -> AnanError:
    with np.errstate(all="ignore"):
        found = (
            f"values {np.nanmin(values):g} to {np.nanmax(values):g}"
            if values.size and np.isfinite(values).any()
            else "no finite values"
        )
    if values.size and not np.isfinite(values).all():
        found += ", with NaN or Inf"
    return AnanError(
        f"image {name} has mode {mode} with {found}, not a range of 0-1, 0-255 or 0-65535: "
        "save it as an 8-bit or 16-bit image scaled to its range"
    )


OnError = Literal["raise", "skip"]


@public
def load_images(
    paths: Iterable[str | os.PathLike[str]],
    spec: InputSpec,
    *,
    on_error: OnError = "raise",
    progress: bool | None = None,
    desc: str = "images",
) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Loads image files into one batch in the model's layout.

    Policy for bad files: by default (``on_error="raise"``) one unreadable, missing or corrupt
    file refuses the whole batch with an :class:`AnanError` naming it, so that no result is
    silently computed on fewer images than asked for. With ``on_error="skip"`` bad files are
    left out and returned in ``skipped`` with the reason, for the caller to report.

    Args:
        paths: image files, in the order wanted in the batch.
        spec: the model input description.
        on_error: ``"raise"`` (default) or ``"skip"``.
        progress: show a progress bar (tqdm, on a terminal only); default: when loading
            more than 200 images.
        desc: label of the progress bar.

    Returns:
        ``(batch, loaded, skipped)``: float32 batch of shape ``spec.batch_shape(len(loaded))``,
        the paths loaded (batch order), and ``(path, message)`` for each skipped file.

    Example:
        >>> batch, loaded, skipped = load_images(["a.png", "b.png"],
        ...     InputSpec("NCHW", 32, 32, 1), on_error="skip")  # doctest: +SKIP
    """
    if on_error not in ("raise", "skip"):
        raise AnanError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    names = [str(p) for p in paths]
    out = np.empty((len(names), spec.height, spec.width, spec.channels), dtype=np.uint8)
    loaded: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name in progress_bar(names, progress, desc):
        try:
            out[len(loaded)] = _read_pixels(Path(name), spec)
        except AnanError as e:
            if on_error == "raise":
                raise
            skipped.append((name, str(e)))
            continue
        loaded.append(name)
    return to_model_input(out[: len(loaded)], spec), loaded, skipped


class ImageBatch(NamedTuple):
    """One batch of :func:`iter_image_batches`.

    Attributes:
        x: float32 model input, ``spec.batch_shape(len(names))`` (may hold 0 images when
            every file of the chunk was skipped).
        names: the files in ``x``, in order.
        skipped: ``(file, message)`` for each file of this chunk left out (``on_error="skip"``).
    """

    x: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]]


def iter_image_batches(
    paths: Iterable[str | os.PathLike[str]],
    spec: InputSpec,
    *,
    batch_size: int = 64,
    on_error: OnError = "raise",
    progress: bool | None = None,
    desc: str = "images",
) -> Iterator[ImageBatch]:
    """Streams image files as model-input batches of at most ``batch_size`` images.

    Memory is bounded by one batch (a uint8 buffer of ``batch_size`` images plus its float32
    copy), whatever the number of files: use it for large folders instead of
    :func:`load_images`. Files are read lazily, in order; the bad-file policy is that of
    :func:`load_images`.

    Args:
        paths: image files (any iterable; a sized one gives the progress bar a total).
        spec: the model input description.
        batch_size: images per batch, >= 1.
        on_error: ``"raise"`` (default: the first bad file stops with an AnanError naming
            it) or ``"skip"`` (bad files are reported in each batch's ``skipped``).
        progress: a tqdm bar on a terminal (never in a pipe); default: more than 200 files.
        desc: label of the progress bar.

    Example:
        >>> for batch in iter_image_batches(files, spec, batch_size=32):  # doctest: +SKIP
        ...     probs = session.predict(batch.x)
    """
    if on_error not in ("raise", "skip"):
        raise AnanError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    batch_size = positive_int("batch_size", batch_size)
    buffer = np.empty((batch_size, spec.height, spec.width, spec.channels), dtype=np.uint8)
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    for path in progress_bar(paths, progress, desc):
        name = str(path)
        try:
            buffer[len(names)] = _read_pixels(Path(name), spec)
        except AnanError as e:
            if on_error == "raise":
                raise
            skipped.append((name, str(e)))
            continue
        names.append(name)
        if len(names) == batch_size:
            yield ImageBatch(to_model_input(buffer, spec), names, skipped)
            names, skipped = [], []
    if names or skipped:
        yield ImageBatch(to_model_input(buffer[: len(names)], spec), names, skipped)


def to_model_input(pixels: np.ndarray, spec: InputSpec, *, layout: str | None = None) -> np.ndarray:
    """Scales uint8 (N, H, W, C) pixels (already in the spec's channel order) per channel,
    ``pixel * scale + offset`` in float32, and puts them in the spec's layout (or
    ``layout``) as float32."""
    # Scaling the whole batch once is much faster than per image, and keeps the pixels
    # uint8 (4x smaller) while loading.
    scale, offset = spec.affine()
    x = pixels.astype(np.float32)
    x *= scale
    if offset.any():
        x += offset
    if (layout or spec.layout) == Layout.NCHW:
        x = np.ascontiguousarray(x.transpose(NHWC_TO_NCHW))
    return x


def progress_bar(items: Iterable[_T], progress: bool | None, desc: str) -> Iterable[_T]:
    """``items``, in a progress bar on a terminal when ``progress`` (default: more than 200
    items, or an iterable of unknown length); see :mod:`anan_onnx.runtime.progress`."""
    total = len(items) if isinstance(items, Sequence) else None
    if progress is None and total is not None and total <= PROGRESS_MIN:
        return items
    return bar(items, enabled=progress, desc=desc, total=total)
