"""User-given ``.npy`` arrays, read without ever unpickling and without trusting the header.

The header is parsed here rather than by ``np.load``: numpy's parser answers a malformed
header with errors that name the wrong cause (``tokenize.TokenError`` tracebacks, "holds
Python objects" for a nested shape) and trusts the shape it declares. Here the header must
be a plain dict of ``descr``, ``fortran_order`` and ``shape`` (a tuple of non-negative
integers), the dtype numeric, and the file exactly as long as the header says, before any
data is touched. The data is then memory-mapped, so a large batch is read as it is used
(``predict`` streams it in chunks) instead of all at once.

Example:
    >>> from anan_onnx.runtime.inputs import check_batch
    >>> x = check_batch(load_npy("batch.npy"), spec)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import math
import os
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from anan_onnx._public import public
from anan_onnx.errors import AnanError
from anan_onnx.files import open_regular

__all__ = ["MAX_HEADER_BYTES", "load_npy"]

_MAGIC = b"\x93NUMPY"
#: Longest header accepted (numpy's own ``max_header_size`` default is 10,000).
MAX_HEADER_BYTES = 10_000


@public
def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Loads a numeric ``.npy`` array, memory-mapped read-only (pickles are refused).

    Args:
        path: a file written by ``numpy.save``.

    Returns:
        The array (a read-only ``np.memmap``; an empty array is returned in memory).

    Raises:
        AnanError: the file is missing or not a regular file, is not a ``.npy`` file, has a
            malformed header, holds Python objects or non-numbers, or is truncated.

    Example:
        >>> x = check_batch(load_npy("batch.npy"), spec)  # doctest: +SKIP
    """
    p = Path(path)
    try:
        with open_regular(p, "array") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(len(_MAGIC) + 4)
            if head[:4] == b"PK\x03\x04":
                raise _npz(p)
            # Check the magic ourselves: without it np.load treats the bytes as a pickle.
            if head[: len(_MAGIC)] != _MAGIC:
                raise AnanError(f"{p} is not a .npy file: save the array with numpy.save")
            offset, header = _read_header(f, p, head)
    except OSError as e:
        raise AnanError(
            f"array file {p} cannot be read ({e.strerror}): check its permissions"
        ) from None
    dtype, fortran, shape = _parse_header(header, p)
    count = math.prod(shape)  # Python integers: no overflow
    expected = offset + count * dtype.itemsize
    if size < expected:
        raise _damaged(
            p,
            f"truncated: its header declares shape {_short(shape)}, {_bytes(expected)}, "
            f"but the file has {size:,} bytes",
        )
    if count == 0:
        return np.empty(shape, dtype)
    try:
        if fortran:
            return np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=shape, order="F")
        return np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=shape, order="C")
    except (OSError, ValueError) as e:
        raise AnanError(f"{p} cannot be mapped ({e}): save it again with numpy.save") from None


def _short(shape: tuple[int, ...]) -> str:
    text = str(shape)
    return text if len(text) <= 80 else text[:77] + "..."


def _bytes(n: int) -> str:
    return f"{n:,} bytes" if n < 10**18 else "more than 10^18 bytes"


def _npz(p: Path) -> AnanError:
    try:
        with zipfile.ZipFile(p) as archive:  # the directory only; no member is extracted
            names = [n.removesuffix(".npy") for n in archive.namelist()]
        listed = f" (arrays: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
    except (OSError, zipfile.BadZipFile):
        listed = ""
    return AnanError(
        f"{p} is an .npz archive{listed}, not a .npy file: save one array with numpy.save, "
        "or pass the archive as a data set"
    )


def _read_header(f: BinaryIO, p: Path, head: bytes) -> tuple[int, str]:
    """(data offset, header text) after the magic and version bytes in ``head``."""
    if len(head) < len(_MAGIC) + 2:
        raise _damaged(p, "the file ends inside its header")
    major = head[len(_MAGIC)]
    if major == 1:
        if len(head) < len(_MAGIC) + 4:
            raise _damaged(p, "the file ends inside its header")
        (length,) = struct.unpack("<H", head[len(_MAGIC) + 2 : len(_MAGIC) + 4])
        start = len(_MAGIC) + 4
    elif major in (2, 3):
        rest = f.read(2)
        if len(rest) < 2:
            raise _damaged(p, "the file ends inside its header")
        (length,) = struct.unpack("<I", head[len(_MAGIC) + 2 :] + rest)
        start = len(_MAGIC) + 6
    else:
        raise _damaged(p, f"unknown format version {major}")
    if length > MAX_HEADER_BYTES:
        raise _damaged(p, f"its header claims {length:,} bytes, more than {MAX_HEADER_BYTES:,}")
    raw = f.read(length)
    if len(raw) < length:
        raise _damaged(p, "the file ends inside its header")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
    except UnicodeDecodeError:
        raise _damaged(p, "its header is not text") from None
    return start + length, text


def _parse_header(text: str, p: Path) -> tuple[np.dtype, bool, tuple[int, ...]]:
    """(dtype, fortran_order, shape) of a header dict, each checked."""
    try:
        header = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise _damaged(p, "its header is not a Python literal") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise _damaged(p, "its header is not a dict of descr, fortran_order and shape")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(
        type(d) is int and d >= 0
        for d in shape  # noqa: E721 -- bool is not a size
    ):
        raise _damaged(p, f"its shape {shape!r} is not a tuple of non-negative integers")
    if not isinstance(header["fortran_order"], bool):
        raise _damaged(p, f"its fortran_order {header['fortran_order']!r} is not True or False")
    descr = header["descr"]
    if not isinstance(descr, str):  # a list describes a structured (record) dtype
        raise AnanError(
            f"array file {p} holds records (a structured dtype), not numbers: save a numeric "
            "array (e.g. float32) with numpy.save"
        )
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise _damaged(p, f"its dtype {descr!r} is not a numpy dtype") from None
    if dtype.hasobject:
        raise AnanError(
            f"array file {p} holds Python objects, refused for safety: save a numeric "
            "array (e.g. float32) with numpy.save"
        )
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise AnanError(f"array file {p} has dtype {dtype}: save a numeric array")
    return dtype, header["fortran_order"], shape


def _damaged(p: Path, why: str) -> AnanError:
    return AnanError(f"{p} is a damaged .npy file ({why}): save it again with numpy.save")
