"""The one exception type users see.

Every problem caused by user input (a file, a parameter, an image) is raised as
:class:`AnanError` with a one-line message that names the problem and the fix. The CLI
prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

from anan_onnx._public import public

__all__ = ["AnanError", "first_line"]


@public
class AnanError(Exception):
    """A user-facing error with a one-line message: what is wrong, then how to fix it.

    Example:
        >>> raise AnanError("k must be a positive integer, got 0: pass --k 1 or more")
        Traceback (most recent call last):
        ...
        anan_onnx.AnanError: k must be a positive integer, got 0: pass --k 1 or more
    """


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line for an AnanError message (its type if it says nothing)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]
