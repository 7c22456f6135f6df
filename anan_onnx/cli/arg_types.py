"""argparse types shared by the commands' parsers: a bad value is argparse's one-line error."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["count"]


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse
