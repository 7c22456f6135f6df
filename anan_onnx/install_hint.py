"""The one place that says how to install an optional extra (``keras``, ``eval`` ...).

anan-onnx is installed from a source checkout (``pip install -e '.[keras]'``) until it is
published on a package index; every "X is missing" hint asks :func:`install_hint`, which
answers with the command that works for the installation at hand.

Example:
    >>> install_hint("keras").startswith("pip install ")
    True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["install_hint", "source_checkout"]


def source_checkout() -> Path | None:
    """The checkout ``anan_onnx`` is imported from (its pyproject.toml names anan-onnx), or
    ``None`` for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "anan-onnx"' in text else None


def install_hint(extra: str) -> str:
    """The pip command that adds ``extra`` to this installation.

    From a source checkout: ``pip install -e '<checkout>[extra]'`` (the checkout's path,
    or ``.`` when it is the current directory); otherwise ``pip install 'anan-onnx[extra]'``.
    """
    root = source_checkout()
    if root is None:
        return f"pip install 'anan-onnx[{extra}]'"
    try:
        here = root == Path.cwd().resolve()
    except OSError:  # the current directory was removed
        here = False
    return f"pip install -e '{'.' if here else root}[{extra}]'"
