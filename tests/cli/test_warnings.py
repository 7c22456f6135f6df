"""The CLI quiets library warnings, but a warning its caller made an error stays one (the
Ray tests run Ray's deprecation warnings as errors through the command line)."""

from __future__ import annotations

import argparse
import warnings

import pytest

from anan_onnx.cli import app


class _Deprecated(DeprecationWarning):
    """A library's warning, as Ray's RayDeprecationWarning."""


def _warning_command(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser(prog="anan-onnx")
    command = parser.add_subparsers().add_parser("warn")
    command.add_argument("--debug", action="store_true")
    command.set_defaults(
        func=lambda args: warnings.warn("old argument", _Deprecated, stacklevel=2), debug=False
    )
    monkeypatch.setattr(app, "_build_parser", lambda: parser)


def test_a_warning_made_an_error_by_the_caller_stays_an_error(monkeypatch):
    _warning_command(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _Deprecated)
        with pytest.raises(_Deprecated, match="old argument"):
            app.main(["warn"])


def test_otherwise_a_library_warning_is_quiet(monkeypatch, capsys):
    _warning_command(monkeypatch)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # shown, were the CLI not to quiet it
        assert app.main(["warn"]) == 0
    assert not seen and capsys.readouterr().err == ""
