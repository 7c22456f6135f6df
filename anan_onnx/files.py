"""Input files that are regular files, or a one-line refusal that names the real cause.

Everything anan-onnx reads from the user (models, images, ``.npy`` batches) goes through
:func:`open_regular` or :func:`check_regular`. A FIFO, a directory, a device or a socket
given where a file is expected is refused at once: opening a FIFO for reading blocks until
a writer appears (forever, in a script), and a device such as ``/dev/zero`` never ends.
The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` on the descriptor, so a
path swapped for a FIFO between a check and the open cannot hang the process either.

Example:
    >>> with open_regular("cat.png", "image") as f:  # doctest: +SKIP
    ...     head = f.read(8)
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from anan_onnx.errors import AnanError

try:
    import fcntl
except ImportError:  # Windows: no FIFOs to block on, and no fcntl
    fcntl = None  # type: ignore[assignment]

__all__ = ["check_regular", "describe_kind", "open_regular"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def describe_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words (``'a FIFO (named pipe)'``, ``'a directory'`` ...)."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def _refuse(path: Path, what: str, mode: int) -> AnanError:
    article = "an" if what[:1] in "aeiou" else "a"
    return AnanError(
        f"{what} {path} is {describe_kind(mode)}, not a regular file: pass {article} {what} file"
    )


def check_regular(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path if it names an existing regular file (symlinks followed).

    Args:
        path: the file.
        what: what the file should be, for messages (``'image'``, ``'model'``, ``'array'``).

    Raises:
        AnanError: missing, a dangling link, unreadable, or not a regular file.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise AnanError(f"{what} {path} is a link to a missing file: check the link") from None
        raise AnanError(f"{what} {path} does not exist (no such file): check the path") from None
    except OSError as exc:
        raise AnanError(
            f"{what} {path} cannot be read ({exc.strerror}): check the path and its permissions"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, what, st.st_mode)
    return path


def open_regular(path: str | os.PathLike[str], what: str) -> BinaryIO:
    """Opens a regular file for binary reading; refuses anything else without blocking.

    The descriptor is opened non-blocking (a FIFO then opens at once instead of waiting for
    a writer), checked with ``fstat``, and switched back to blocking reads.

    Raises:
        AnanError: as :func:`check_regular`.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        check_regular(path, what)  # the precise reason (missing, dangling link)
        raise AnanError(f"{what} {path} does not exist (no such file): check the path") from None
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # a socket; a directory on some systems
            check_regular(path, what)
        raise AnanError(
            f"{what} {path} cannot be read ({exc.strerror}): check the path and its permissions"
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(path, what, mode)
        if fcntl is not None:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
