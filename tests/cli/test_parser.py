"""The CLI's parser: option names are exact (no abbreviations)."""

from __future__ import annotations

import pytest

from anan_onnx.cli.app import main


@pytest.mark.parametrize(
    "argv",
    [
        ["convert", "model.onnx", "--verif", "3"],  # --verify
        ["verify", "model.anan.onnx", "--bas", "base.onnx"],  # --base
        ["tune", "model.onnx", "data", "--metr", "f1"],  # --metric
    ],
)
def test_an_abbreviated_option_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    abbreviated = next(a for a in argv if a.startswith("--"))
    assert "\n" not in err and "unrecognized arguments" in err and abbreviated in err
