"""The CLI quiets library warnings, but a warning its caller made an error stays one (the
Ray tests run Ray's deprecation warnings as errors through the command line)."""

from __future__ import annotations

import argparse
import warnings

import pytest

from anan_onnx.cli import app


class _Deprecated(DeprecationWarning):
    """A library's warning, as Ray's RayDeprecationWarning."""


def _deprecated(args: argparse.Namespace) -> None:
    warnings.warn("old argument", _Deprecated, stacklevel=2)


def _ours(args: argparse.Namespace) -> None:
    """A UserWarning as if from an anan_onnx module (shown with "always" otherwise)."""
    warnings.warn_explicit("a weak check", UserWarning, "x.py", 1, module="anan_onnx.x")


def _warning_command(monkeypatch: pytest.MonkeyPatch, func=_deprecated) -> None:
    parser = argparse.ArgumentParser(prog="anan-onnx")
    command = parser.add_subparsers().add_parser("warn")
    command.add_argument("--debug", action="store_true")
    command.set_defaults(func=func, debug=False)
    monkeypatch.setattr(app, "_build_parser", lambda: parser)


def test_a_warning_made_an_error_by_the_caller_stays_an_error(monkeypatch, capsys):
    _warning_command(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _Deprecated)
        assert app.main(["warn"]) == 2
        with pytest.raises(_Deprecated, match="old argument"):  # --debug: the traceback
            app.main(["warn", "--debug"])
    err = capsys.readouterr().err
    assert err.startswith("anan-onnx: error: old argument (_Deprecated, a warning made an")
    assert err.count("\n") == 1


def test_a_narrower_filter_in_front_of_the_error_still_wins(monkeypatch, capsys):
    """``python -W error -W ignore::DeprecationWarning``: the ignore is first, then error."""
    _warning_command(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DeprecationWarning)
        assert app.main(["warn"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("func", [_deprecated, _ours])
def test_every_warning_an_error_gives_one_line(monkeypatch, capsys, func):
    """``PYTHONWARNINGS=error``: a library's warning, or anan_onnx's own UserWarning, stops
    the command with one line, no traceback."""
    _warning_command(monkeypatch, func)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert app.main(["warn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anan-onnx: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_otherwise_a_library_warning_is_quiet(monkeypatch, capsys):
    _warning_command(monkeypatch)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # shown, were the CLI not to quiet it
        assert app.main(["warn"]) == 0
    assert not seen and capsys.readouterr().err == ""
