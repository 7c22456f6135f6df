"""Progress on a terminal, silence in pipes: one policy for every long wait.

``bar`` wraps an iterable in a tqdm bar and ``Stages`` prints one line per stage of a
multi-second job (conversion), both on stderr and only when stderr is a terminal: a bar is
never drawn into a pipe or a log (``enabled=False`` turns it off on a terminal too), and
stage lines can be asked for explicitly (``Stages(enabled=True)``). Output meant for
programs (stdout, ``--json``) is never touched.

Example:
    >>> list(bar([1, 2, 3], enabled=False))
    [1, 2, 3]
    >>> Stages(enabled=False)("exporting")   # prints nothing
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import IO, TypeVar

__all__ = ["Stages", "bar", "on_terminal"]

_T = TypeVar("_T")


def on_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: stderr) is an interactive terminal."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def bar(
    items: Iterable[_T],
    *,
    enabled: bool | None = None,
    total: int | None = None,
    desc: str = "",
    unit: str = "img",
) -> Iterable[_T]:
    """``items`` in a tqdm bar on stderr when stderr is a terminal (``enabled`` None or
    True: callers say whether a bar is wanted, this decides where), never with ``False``
    (or without tqdm)."""
    if enabled is False or not on_terminal():
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but progress must never break a run
        return items
    return tqdm(items, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)


class Stages:
    """Prints ``[  2.3 s] message`` on stderr as each stage of a job starts.

    Args:
        enabled: ``None`` (default): only when stderr is a terminal.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = on_terminal() if enabled is None else enabled
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:5.1f} s] {message} ...", file=sys.stderr, flush=True)
