"""The compress CLI: a good run, verify's compressed mode, and bad input refused cleanly."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from anan_onnx.cli import main


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def work(small: Path, tmp_path: Path) -> Path:
    """A copy of the small model, its base and its calibration images."""
    for name in ("cnn.anan.onnx", "cnn.base.onnx"):
        shutil.copy(small.with_name(name), tmp_path / name)
    shutil.copytree(small.parent / "data", tmp_path / "data")
    return tmp_path


def test_compress_then_verify(work: Path, capsys) -> None:
    code = main(["compress", str(work / "cnn.anan.onnx"), "--int8", "--calibration",
                 str(work / "data"), "--calibration-size", "8"])  # fmt: skip
    assert code == 0
    assert (work / "cnn.int8.anan.onnx").is_file() and (work / "cnn.int8.base.onnx").is_file()
    capsys.readouterr()
    assert main(["verify", str(work / "cnn.int8.anan.onnx"), "-n", "8"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "vs FP32:" in out


def _bad_cases(work: Path) -> dict[str, list[str]]:
    (work / "empty").mkdir()
    (work / "broken").mkdir()
    (work / "broken" / "x.png").write_bytes(b"not a png")
    with zipfile.ZipFile(work / "model.keras", "w") as z:
        z.writestr("config.json", "{}")
    model = str(work / "cnn.anan.onnx")
    return {
        "empty calibration folder": ["compress", model, "--int8", "--calibration",
                                     str(work / "empty")],
        "unreadable calibration image": ["compress", model, "--int8", "--calibration",
                                         str(work / "broken")],
        "missing calibration": ["compress", model, "--int8"],
        "no ANAN nodes": ["compress", str(work / "cnn.base.onnx"), "--fp16"],
        "keras file": ["compress", str(work / "model.keras"), "--fp16"],
        "zero calibration size": ["compress", model, "--int8", "--calibration",
                                  str(work / "data"), "--calibration-size", "0"],
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        "empty calibration folder",
        "unreadable calibration image",
        "missing calibration",
        "no ANAN nodes",
        "keras file",
        "zero calibration size",
    ],
)
def test_bad_input_one_line_nothing_written(case: str, work: Path, capsys) -> None:
    argv = _bad_cases(work)[case]
    before = _snapshot(work)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("anan-onnx: error:"), err
    assert _snapshot(work) == before


def test_already_compressed_model_is_refused(work: Path, capsys) -> None:
    assert main(["compress", str(work / "cnn.anan.onnx"), "--fp16"]) == 0
    capsys.readouterr()
    before = _snapshot(work)
    assert main(["compress", str(work / "cnn.fp16.anan.onnx"), "--fp16", "-o",
                 str(work / "again.anan.onnx")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already compressed" in err[0]
    assert _snapshot(work) == before


def test_predict_and_evaluate_take_compressed_models(work: Path, capsys) -> None:
    assert main(["compress", str(work / "cnn.anan.onnx"), "--fp16"]) == 0
    images = sorted(str(p) for p in (work / "data").glob("*.png"))[:3]
    capsys.readouterr()
    assert main(["predict", str(work / "cnn.fp16.anan.onnx"), *images]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 3 and all("label=" in r for r in rows)
    labelled = work / "labelled"
    for i, image in enumerate(sorted((work / "data").glob("*.png"))):
        (labelled / ("a" if i % 2 else "b")).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, labelled / ("a" if i % 2 else "b") / image.name)
    code = main(["evaluate", str(work / "cnn.fp16.anan.onnx"), str(labelled), "--json",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert set(result["scores"]) == {"fp32", "fp16"}
    assert result["n_test"] >= 4 and 0 <= result["agreement_with_fp32"] <= 1
