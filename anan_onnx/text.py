"""The one escaping rule for text output: nothing read from input reaches a terminal or a
line-oriented consumer raw.

File names, class names and metadata values come from users. Printed raw, a newline or a tab
in a class name forges a ``predict`` row (``cats\\n/etc/shadow\\t0.000001\\tlabel=0``), and an
ESC or OSC sequence drives the terminal. Every text line built from such a value goes
through :func:`shown`: a character that :meth:`str.isprintable` rejects (control characters
C0/C1 and DEL, tab, newline, Unicode line and paragraph separators, bidi and other format
characters) is written as its Python escape (``\\n``, ``\\t``, ``\\x1b``, ``\\u202e``), so
one value is always one field on one line. Printable text, accents and CJK included, is
unchanged. ``--json`` output needs none of this: JSON escapes control characters itself.

Example:
    >>> shown("cats\\n/etc/shadow\\tlabel=0")
    'cats\\\\n/etc/shadow\\\\tlabel=0'
    >>> shown("chats é")
    'chats é'
    >>> shown("x" * 30, limit=10)
    'xxxxxxxxxx... (20 more characters; see --json)'
"""

from __future__ import annotations

from anan_onnx.errors import AnanError

__all__ = ["MAX_CLASS_NAME", "check_name", "shown"]

#: Longest class name ``convert`` records (characters): real names are words.
MAX_CLASS_NAME = 200

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shown(value: object, limit: int | None = None) -> str:
    """``str(value)`` safe to print as one field of one line (see the module docstring);
    cut to ``limit`` characters, with a note of how many more there are, if given."""
    text = str(value)
    more = 0
    if limit is not None and len(text) > limit:
        text, more = text[:limit], len(text) - limit
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    return f"{text}... ({more:,} more characters; see --json)" if more else text


def check_name(name: str, what: str = "class name") -> str:
    """``name`` if it is fit to record and print: printable (no control, tab, newline or
    format characters) and at most :data:`MAX_CLASS_NAME` characters.

    Raises:
        AnanError: naming the offending character or the length.
    """
    if len(name) > MAX_CLASS_NAME:
        raise AnanError(
            f"{what} {shown(name, 40)!r} has {len(name):,} characters, more than "
            f"{MAX_CLASS_NAME}: pass shorter names"
        )
    if not name.isprintable():
        bad = next(c for c in name if not c.isprintable())
        raise AnanError(
            f"{what} {shown(name)!r} contains the control character {_escape(bad)}: "
            "pass names of printable characters (no tabs, newlines or escapes)"
        )
    return name
