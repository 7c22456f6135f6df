"""User-given ``.npy`` arrays, read without ever unpickling.

Example:
    >>> from anan_onnx.runtime.inputs import check_batch
    >>> x = check_batch(load_npy("batch.npy"), spec)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from anan_onnx.errors import AnanError

__all__ = ["load_npy"]


def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Loads a numeric ``.npy`` array (pickled objects are refused for safety).

    Args:
        path: a file written by ``numpy.save``.

    Raises:
        AnanError: the file is missing, is not a ``.npy`` file, or holds Python objects.

    Example:
        >>> x = check_batch(load_npy("batch.npy"), spec)  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise AnanError(f"array file {p} does not exist: check the path")
    if p.is_dir():
        raise AnanError(f"array file {p} is a folder: pass a .npy file written by numpy.save")
    try:
        with open(p, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise AnanError(
            f"array file {p} cannot be read ({e.strerror}): check its permissions"
        ) from None
    if magic[:4] == b"PK\x03\x04":
        with np.load(p, allow_pickle=False) as archive:
            keys = ", ".join(archive.files)
        raise AnanError(
            f"{p} is an .npz archive (arrays: {keys}), not a .npy file: save one array with "
            "numpy.save, or pass the archive as a data set"
        )
    # Check the magic ourselves: without it np.load treats the bytes as a pickle.
    if magic != b"\x93NUMPY":
        raise AnanError(f"{p} is not a .npy file: save the array with numpy.save")
    try:
        data = np.load(p, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise AnanError(
                f"array file {p} holds Python objects, refused for safety: save a numeric "
                "array (e.g. float32) with numpy.save"
            ) from None
        raise _damaged_npy(p, e) from None
    except (OSError, EOFError) as e:
        raise _damaged_npy(p, e) from None
    if data.dtype.kind not in "biufc":
        raise AnanError(f"array file {p} has dtype {data.dtype}: save a numeric array")
    return data


def _damaged_npy(p: Path, e: Exception) -> AnanError:
    return AnanError(f"{p} is a damaged .npy file ({e}): save it again with numpy.save")
