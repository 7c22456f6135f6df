"""argparse types and arguments shared by the commands' parsers: a bad value is argparse's
one-line error, or the options' own (an AnanError) when the options object is made."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from anan_onnx.errors import AnanError
from anan_onnx.options import options_of

__all__ = ["add_options", "argparse_type", "count", "options_from"]

_T = TypeVar("_T")
#: how --help names a value of each kind, where its option says nothing
_METAVARS = {int: "N", float: "X", str: "NAME"}


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


def add_options(group: Any, cls: type, only: Collection[str] | None = None) -> None:
    """One argument per field of the options class ``cls`` (:mod:`anan_onnx.options`), with
    its flag, default and help; ``only`` picks fields by name. The values are validated by
    ``cls`` itself (:func:`options_from`), so the CLI and the API accept the same values."""
    for opt in options_of(cls):
        if only is not None and opt.name not in only:
            continue
        kwargs: dict[str, Any] = {"dest": opt.name, "default": opt.default, "help": opt.help_text}
        if opt.kind is bool:  # a switch: --simplify sets True, --no-progress sets False
            kwargs.update(action="store_const", const=not opt.cli_flag.startswith("--no-"))
        elif opt.choices:
            kwargs.update(choices=opt.choices)
        else:
            parse = argparse_type(opt.parse) if opt.parse else opt.kind
            kwargs.update(type=parse, metavar=opt.metavar or _METAVARS.get(opt.kind))
        group.add_argument(opt.cli_flag, **kwargs)
        if opt.kind is bool and opt.default is None and kwargs["const"]:
            # a three-way switch (None: decided per model): --no-NAME sets False
            off = {**kwargs, "const": False, "help": f"the opposite of {opt.cli_flag}"}
            group.add_argument("--no-" + opt.cli_flag[2:], **off)


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` with its AnanError as argparse's error (argparse would let it escape)."""

    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except AnanError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return wrapped


def options_from(args: argparse.Namespace, cls: type[_T]) -> _T:
    """The options object ``cls`` of the parsed ``args`` (fields not on this parser keep their
    defaults)."""
    return cls(**{o.name: getattr(args, o.name) for o in options_of(cls) if hasattr(args, o.name)})
