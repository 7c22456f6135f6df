"""Bad input to ``anan-onnx export``: one line on stderr naming the problem and the fix,
exit status != 0, and nothing written (no output folder, no file, no temporary)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import onnx
import pytest

from anan_onnx.testing import VARIANTS, build_cnn

BUNDLED_KERAS = Path(__file__).resolve().parents[2] / "models" / "catsdogs_cnn.keras"


def _assert_refused(proc, needle: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1, proc.stderr
    assert re.match(r"anan-onnx( export)?: error: ", lines[0]) and needle in lines[0], lines[0]
    assert proc.stdout == ""


def test_not_an_anan_model(cli, tmp_path: Path) -> None:
    plain = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), plain)
    proc = cli("export", str(plain), "--target", "web", "-o", str(tmp_path / "out"))
    _assert_refused(proc, "is not an ANAN model")
    assert not (tmp_path / "out").exists()


def test_a_keras_file(cli, tmp_path: Path) -> None:
    keras = tmp_path / "catsdogs.keras"
    shutil.copyfile(BUNDLED_KERAS, keras)
    proc = cli("export", str(keras), "--target", "mobile")
    _assert_refused(proc, "convert it first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catsdogs.keras"]


def test_unknown_target(cli, generated_model: Path, tmp_path: Path) -> None:
    proc = cli("export", str(generated_model), "--target", "tflite", "-o", str(tmp_path / "o"))
    _assert_refused(proc, "invalid choice: 'tflite'")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["under_a_file", "a_file"])
def test_unwritable_output(cli, generated_model: Path, tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a folder\n")
    output = blocker / "out" if where == "under_a_file" else blocker
    proc = cli("export", str(generated_model), "--target", "ort", "-o", str(output))
    _assert_refused(proc, str(blocker))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.txt"]
    assert blocker.read_text() == "not a folder\n"


def test_output_is_the_input(cli, generated_model: Path) -> None:
    before = generated_model.read_bytes()
    proc = cli("export", str(generated_model), "--target", "web", "-o", str(generated_model))
    _assert_refused(proc, "is the input model")
    assert generated_model.read_bytes() == before


def test_batch_must_be_positive(cli, generated_model: Path, tmp_path: Path) -> None:
    proc = cli(
        "export", str(generated_model), "--target", "web", "--batch", "0", "-o", str(tmp_path / "o")
    )
    _assert_refused(proc, "must be >= 1")
    assert not (tmp_path / "o").exists()


def test_the_simplifier_option_is_simplifier(cli, generated_model: Path, tmp_path: Path) -> None:
    # ``--simplify`` is convert's flag (run onnxslim); export picks a tool with --simplifier
    proc = cli("export", str(generated_model), "--target", "web", "--simplify", "none")
    _assert_refused(proc, "unrecognized arguments: --simplify")
    proc = cli("export", str(generated_model), "--target", "web", "--simplifier", "tflite")
    _assert_refused(proc, "invalid choice: 'tflite'")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
