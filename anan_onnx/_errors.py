"""The one exception type users see.

Every problem caused by user input (a file, a parameter, an image) is raised as
:class:`AnanError` with a one-line message that names the problem and the fix. The CLI
prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

__all__ = ["AnanError"]


class AnanError(Exception):
    """A user-facing error with a one-line message: what is wrong, then how to fix it.

    Example:
        >>> raise AnanError("k must be a positive integer, got 0: pass --k 1 or more")
        Traceback (most recent call last):
        ...
        anan_onnx._errors.AnanError: k must be a positive integer, got 0: pass --k 1 or more
    """
