"""Image files to model input: read, convert, resize and scale them as an InputSpec says.

Example:
    >>> from anan_onnx.runtime.inputs import InputSpec
    >>> spec = InputSpec("NHWC", 32, 32, 3)
    >>> batch, loaded, skipped = load_images(["a.png"], spec)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from anan_onnx.errors import AnanError, first_line
from anan_onnx.runtime.inputs import NHWC_TO_NCHW, InputSpec

__all__ = [
    "IMAGE_EXTENSIONS",
    "load_image",
    "load_images",
    "pixels_from_pil",
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

_T = TypeVar("_T")


def load_image(path: str | os.PathLike[str], spec: InputSpec) -> np.ndarray:
    """Loads one image file as model-ready pixels.

    The image is converted to RGB (``channels=3``) or grayscale (``channels=1``; alpha is
    dropped), resized to the spec's size with bilinear interpolation when its size differs,
    then scaled: ``x = pixel * scale + offset``. EXIF orientation is not applied, as in
    Keras' ``load_img``.

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
    pixels = _read_pixels(Path(path), spec)
    x = pixels.astype(np.float32)
    x *= np.float32(spec.scale)
    if spec.offset:
        x += np.float32(spec.offset)
    return x


def _read_pixels(path: Path, spec: InputSpec) -> np.ndarray:
    """uint8 (H, W, C) pixels of ``path`` converted and resized for ``spec``."""
    name = str(path)
    if not path.exists():
        raise AnanError(f"image {name} does not exist: check the path")
    if path.is_dir():
        raise AnanError(f"image {name} is a folder, not an image file: pass image files")
    try:
        with Image.open(path) as im:
            return pixels_from_pil(im, spec)
    except PermissionError as e:
        raise AnanError(
            f"image {name} cannot be read ({e.strerror}): check its permissions"
        ) from None
    except UnidentifiedImageError:
        raise AnanError(
            f"image {name} is not a readable image: remove it or convert it to PNG/JPEG"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports truncated or corrupt data as OSError (SyntaxError for some plugins)
        # when the pixels are decoded, after the header was read successfully.
        raise AnanError(
            f"image {name} is corrupt or truncated ({first_line(e)}): remove it or re-save it"
        ) from None


def pixels_from_pil(im: Image.Image, spec: InputSpec) -> np.ndarray:
    """uint8 (H, W, C) pixels of a Pillow image converted and resized for ``spec``.

    Shared by files and by arrays (``.npz`` data sets) so both get the same preprocessing.
    """
    mode = "RGB" if spec.channels == 3 else "L"
    if im.mode != mode:
        im = im.convert(mode)
    if im.size != (spec.width, spec.height):
        im = im.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(im, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return pixels


OnError = Literal["raise", "skip"]


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


def to_model_input(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Scales uint8 (N, H, W, C) pixels and puts them in the spec's layout (float32)."""
    # Scaling the whole batch once is much faster than per image, and keeps the pixels
    # uint8 (4x smaller) while loading.
    x = pixels.astype(np.float32)
    x *= np.float32(spec.scale)
    if spec.offset:
        x += np.float32(spec.offset)
    if spec.layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(NHWC_TO_NCHW))
    return x


def progress_bar(items: Sequence[_T], progress: bool | None, desc: str) -> Iterable[_T]:
    """``items``, wrapped in a tqdm bar when ``progress`` (default: more than 200 items)."""
    if progress is None:
        progress = len(items) > PROGRESS_MIN
    if not progress:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional at import time; loading works without it
        return items
    # disable=None: no bar when stderr is not a terminal (logs, CI).
    return tqdm(items, desc=desc, unit="img", disable=None, leave=False)
