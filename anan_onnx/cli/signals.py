"""SIGTERM and SIGHUP unwind like Ctrl-C, so that half-written outputs are cleaned up.

The default action of SIGTERM kills the process on the spot and leaves the ``.*.tmp`` files
of an atomic write beside the output. Here the signal raises :class:`Terminated` (a
``BaseException``, like ``KeyboardInterrupt``): every ``finally`` runs, the temp files are
removed, and the CLI exits with status 128 + the signal number.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["Terminated", "terminate_cleanly"]


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM or SIGHUP arrives."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Installs the handler for the duration (main thread only; elsewhere a no-op)."""
    saved: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None:
                saved[signum] = signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)
