"""The CLI's warnings: library noise hidden, anan_onnx's own shown as one line, and the
caller's ``-W``/``PYTHONWARNINGS`` errors kept."""

from __future__ import annotations

import sys
import warnings

from anan_onnx.text import shown

__all__ = ["quiet_library_warnings"]


def quiet_library_warnings() -> None:
    """Ignores library noise (TF, protobuf), shows anan_onnx's own UserWarnings, and keeps
    whatever the caller made an error one (tests: Ray's deprecations as errors).

    The caller's filters are kept in their order, every one up to the last "error": a
    narrower one in front of it (``-W error -W ignore::DeprecationWarning``) still wins,
    and the "always" for anan_onnx goes behind them, so ``-W error`` makes ours errors too.
    """
    actions = [f[0] for f in warnings.filters]
    last_error = len(actions) - actions[::-1].index("error") if "error" in actions else 0
    kept: list[tuple] = list(warnings.filters[:last_error])  # untyped: re-passed as given
    warnings.simplefilter("ignore")
    warnings.filterwarnings("always", category=UserWarning, module=r"anan_onnx\..*")
    for action, message, category, module, lineno in reversed(kept):  # to the front, in order
        text = message.pattern if message is not None else ""
        warnings.filterwarnings(action, text, category, module.pattern if module else "", lineno)
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"anan-onnx: warning: {shown(message)}", file=sys.stderr)
