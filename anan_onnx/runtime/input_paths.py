"""What ``predict`` is given, as a stream of inputs: files, folders, list files, globs, URIs.

An input argument is

* a file (image or ``.npy``): itself;
* a folder: its images, recursively, in sorted order; a file counts as an image by its
  content (PNG, JPEG, GIF, BMP, TIFF or WebP signature) or by its name ending
  (:data:`~anan_onnx.runtime.image_files.IMAGE_EXTENSIONS`), so that ``photo`` without a
  suffix is found and a damaged ``x.png`` is reported, not silently left out; hidden files
  and folders (``.name``) are skipped;
* ``@FILE`` (or a ``--inputs-from FILE``): one input per line, relative to the list
  file's folder; blank lines and ``#`` comments are skipped; ``-`` reads standard input;
* a glob pattern (``*``, ``?``, ``[``): its matches in sorted order (``**`` recursive);
* a URI (``s3://bucket/prefix``, ``gs://...``): passed through for ``predict -o DIR``,
  which lists and reads it (:mod:`anan_onnx.distributed.listing`; with ``--engine ray``
  on the workers).

Everything is a generator: nothing holds the list of all inputs, so a list file of 10^8
lines or a folder tree of that size is streamed (the argument list of a shell is not the
limit any more).

Example:
    >>> list(iter_inputs([]))
    []
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from anan_onnx.errors import AnanError

__all__ = ["LIST_PREFIX", "is_image_file", "is_uri", "iter_inputs", "iter_list_file"]

#: An argument ``@FILE`` is a list file.
LIST_PREFIX = "@"
#: File signatures of the image formats Pillow reads that we accept (leading bytes).
_SIGNATURES: tuple[bytes, ...] = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
_GLOB_CHARS = "*?["


def is_uri(text: str) -> bool:
    """``scheme://...`` with a scheme of two or more letters (``C:\\`` is a path)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").isalnum()


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """An image by its name ending or, failing that, by its first bytes."""
    from anan_onnx.runtime.image_files import IMAGE_EXTENSIONS  # Pillow: only for folders

    if os.fspath(path).lower().endswith(IMAGE_EXTENSIONS):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def iter_inputs(
    items: Iterable[str | os.PathLike[str]],
    *,
    inputs_from: Iterable[str | os.PathLike[str]] = (),
    absolute: bool = False,
    uris: bool = False,
) -> Iterator[str]:
    """The inputs named by ``items`` and the list files ``inputs_from``, in order.

    Args:
        items: files, folders, ``@list`` files, glob patterns (and URIs when ``uris``).
        inputs_from: list files, read after ``items``.
        absolute: resolve relative paths here (the Ray engine ships absolute paths, so that
            a worker with another working directory reads the same files).
        uris: let URIs through (else they are refused: only ``predict -o DIR`` reads them).

    Raises:
        AnanError: an input that does not exist, a folder without images, a pattern that
            matches nothing, a list file that cannot be read or lists nothing.
    """
    for item in items:
        yield from _expand(os.fspath(item), absolute, uris)
    for listed in inputs_from:
        yield from _listed(os.fspath(listed), absolute, uris)


def _expand(text: str, absolute: bool, uris: bool) -> Iterator[str]:
    if text.startswith(LIST_PREFIX):
        yield from _listed(text[len(LIST_PREFIX) :], absolute, uris)
    elif is_uri(text):
        if not uris:
            raise AnanError(f"input {text} is a URI: predict it with -o DIR (either engine)")
        yield text
    elif os.path.isdir(text):
        yield from _folder(text, absolute)
    elif os.path.lexists(text):  # a file; a FIFO or a device is refused by its reader
        yield os.path.abspath(text) if absolute else text
    elif any(c in text for c in _GLOB_CHARS):
        found = sorted(glob.iglob(text, recursive=True))
        if not found:
            raise AnanError(f"pattern {text} matches no files: check the pattern")
        for match in found:
            if os.path.isdir(match):
                yield from _folder(match, absolute)
            else:
                yield os.path.abspath(match) if absolute else match
    else:
        raise AnanError(
            f"input {text} does not exist: pass image files, folders, globs or @list files"
        )


def _folder(root: str, absolute: bool) -> Iterator[str]:
    """The images under ``root``, depth first, each folder's entries sorted by name."""
    found = False
    for folder, dirs, files in os.walk(os.path.abspath(root) if absolute else root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not name.startswith(".") and is_image_file(path):
                found = True
                yield path
    if not found:
        raise AnanError(f"folder {root} has no image files: pass a folder of images")


def _listed(name: str, absolute: bool, uris: bool) -> Iterator[str]:
    """The inputs of a list file, each line expanded as an argument would be."""
    found = False
    for line in iter_list_file(name):
        found = True
        yield from _expand(line, absolute, uris)
    if not found:
        raise AnanError(f"list file {name} lists no inputs: one image path per line")


def iter_list_file(name: str) -> Iterator[str]:
    """The entries of a list file (``-``: standard input), relative ones made relative to
    the list's folder, streamed line by line."""
    if name == "-":
        yield from _entries(sys.stdin, ".", name)
        return
    try:
        with open(name, encoding="utf-8") as f:
            yield from _entries(f, os.path.dirname(name) or ".", name)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise AnanError(f"list file {name} cannot be read ({reason}): pass a text file") from None


def _entries(lines: Iterable[str], base: str, name: str) -> Iterator[str]:
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith(LIST_PREFIX):
            raise AnanError(f"list file {name} names another list ({entry}): flatten the lists")
        if is_uri(entry) or os.path.isabs(entry) or base == ".":
            yield entry
        else:
            yield str(Path(base) / entry)
