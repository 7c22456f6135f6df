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
    # options a compressed model's evaluate and verify cannot honour: refused in one line
    model = str(work / "cnn.fp16.anan.onnx")
    for argv, flag in (
        (["evaluate", model, str(labelled), "--layers", "all"], "--layers"),
        (["evaluate", model, str(labelled), "--channel-order", "BGR"], "--channel-order"),
        (["verify", model, "--margin"], "--margin"),
        (["verify", model, "--engine-precision", "f16"], "--engine-precision"),
    ):
        assert main([*argv, "--no-progress"] if argv[0] == "evaluate" else argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"takes no {flag}" in err[0], err


def test_compress_reports_agreement_method_and_small_calibration(work: Path, capsys) -> None:
    import onnx

    from anan_onnx.metadata import read_metadata

    code = main(["compress", str(work / "cnn.anan.onnx"), "--int8", "--calibration",
                 str(work / "data"), "--calibration-size", "1", "--check-size", "12",
                 "--calibration-method", "entropy"])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "anan-onnx: warning: calibrating on 1 image(s)" in captured.err
    line = next(r for r in captured.out.splitlines() if "held back" in r)
    assert "vs FP32: " in line and "/12 predictions equal" in line
    meta = read_metadata(onnx.load(str(work / "cnn.int8.anan.onnx")))
    assert meta["calibration_method"] == "entropy" and meta["calibration_size"] == "1"
    assert meta["fp32_agreement"].endswith("/12")


def test_compress_warns_when_held_back_agreement_is_low(work: Path, capsys) -> None:
    """The test CNN on random pixels: its INT8 copy from 16 images agrees on 6/8 held back."""
    code = main(["compress", str(work / "cnn.anan.onnx"), "--int8", "--calibration",
                 str(work / "data"), "--calibration-size", "16"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "held-back images" in err and "below 99.0%" in err


def test_fp16_measures_agreement_on_given_images(work: Path, capsys) -> None:
    code = main(["compress", str(work / "cnn.anan.onnx"), "--fp16", "--calibration",
                 str(work / "data"), "--check-size", "10"])  # fmt: skip
    assert code == 0
    line = next(r for r in capsys.readouterr().out.splitlines() if "held back" in r)
    assert "10/10 predictions equal" in line


def test_verify_checks_agreement_with_fp32(work: Path, capsys) -> None:
    """A compressed model and base with the head negated alike agree with each other and
    with the literal loop, not with the FP32 model: verify fails, unless told to accept."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    assert main(["compress", str(work / "cnn.anan.onnx"), "--fp16"]) == 0
    for name in ("cnn.fp16.anan.onnx", "cnn.fp16.base.onnx"):
        model = onnx.load(str(work / name))
        for init in model.graph.initializer:
            if init.name in ("output_w", "output_b"):
                negated = -numpy_helper.to_array(init)
                init.CopyFrom(numpy_helper.from_array(negated.astype(np.float16), init.name))
        onnx.save(model, str(work / name))
    capsys.readouterr()
    model = str(work / "cnn.fp16.anan.onnx")
    images = [str(p) for p in sorted((work / "data").glob("*.png"))[:8]]
    assert main(["verify", model, "--inputs", *images]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "BELOW >= 99.0%" in out and "8/8 predictions agree" in out
    assert main(["verify", model, "--inputs", *images, "--min-agreement", "0"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # argparse's own error
        main(["verify", model, "--min-agreement", "1.5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--min-agreement" in err[0]


def test_verify_on_random_inputs_does_not_decide_on_fp32(work: Path, capsys) -> None:
    """Random pixels sit near every decision boundary: without --inputs the FP32 check is
    reported as not measured and kept out of PASS/FAIL (not decided on noise)."""
    import json

    assert main(["compress", str(work / "cnn.anan.onnx"), "--fp16"]) == 0
    capsys.readouterr()
    model = str(work / "cnn.fp16.anan.onnx")
    assert main(["verify", model, "-n", "8", "--min-agreement", "1"]) == 0
    out = capsys.readouterr().out
    assert "vs FP32: not measured (random inputs: pass --inputs with real images)" in out
    assert main(["verify", model, "-n", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fp32"] is None and "random inputs" in report["fp32_not_measured"]


def test_verify_compressed_checks_and_streams_npy_inputs(work: Path, capsys, monkeypatch) -> None:
    """Compressed verify checks each .npy as plain verify does and runs --batch-size chunks."""
    import numpy as np

    from anan_onnx.reference.literal import LiteralReference

    assert main(["compress", str(work / "cnn.anan.onnx"), "--fp16"]) == 0
    capsys.readouterr()
    model = str(work / "cnn.fp16.anan.onnx")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 32, 32, 3), np.uint8)
    np.save(work / "u8.npy", pixels)
    np.save(work / "x.npy", pixels.astype(np.float32) / 255)
    np.save(work / "small.npy", np.zeros((2, 16, 16, 3), np.float32))
    for name, message in (("u8.npy", "uint8"), ("small.npy", "32")):
        assert main(["verify", model, "--inputs", str(work / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("anan-onnx: error:") and message in err[0]
    sizes: list[int] = []
    run = LiteralReference.run

    def counted(self, x, **options):
        sizes.append(len(x))
        return run(self, x, **options)

    monkeypatch.setattr(LiteralReference, "run", counted)
    assert main(["verify", model, "--inputs", str(work / "x.npy"), "--batch-size", "5"]) == 0
    out = capsys.readouterr().out
    assert "vs FP32: 12/12 predictions equal" in out
    assert sizes and max(sizes) <= 5
