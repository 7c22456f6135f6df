"""The CLI end to end on a small ONNX CNN, and every bad input it must refuse cleanly.

Each refusal: exit status != 0, one line on stderr naming the fix, no traceback, the input
file unchanged and no output file (complete or partial) left behind.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from anan_onnx import read_metadata
from anan_onnx.cli import main
from anan_onnx.testing import VARIANTS, build_cnn

VARIANT = VARIANTS["plain"]  # NCHW, 3×11×11


def cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "anan_onnx", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("anan-onnx")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    src = root / "cnn.onnx"
    onnx.save(build_cnn(VARIANT, head="sigmoid", seed=4), src)
    result = cli(
        "convert", src, "-o", root / "cnn.anan.onnx", "--a", "1.5", "--b", "0.5", "--scale", "1/255"
    )
    assert result.returncode == 0, result.stderr
    rng = np.random.default_rng(0)
    images = []
    for i, mode in enumerate(["RGB", "RGB", "L"]):
        path = root / f"img{i}.png"
        shape = (20, 16, 3) if mode == "RGB" else (20, 16)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
        images.append(path)
    good = root / "good.npy"
    np.save(good, rng.random((4, 3, 11, 11), dtype=np.float32))
    return {
        "root": root,
        "src": src,
        "anan": root / "cnn.anan.onnx",
        "base": root / "cnn.base.onnx",
        "images": images,
        "npy": good,
    }


def test_help_for_every_command():
    for command in ([], ["convert"], ["inspect"], ["predict"], ["verify"]):
        result = cli(*command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout


def test_inspect_json(files):
    result = cli("inspect", files["anan"], "--json")
    info = json.loads(result.stdout)
    assert info["kind"] == "anan" and info["metadata"]["a"] == "1.5"
    assert info["metadata"]["target_layer"] == "conv1"
    # the layer's, and the kernel means' (a small Conv over the window sums: no blocked
    # scaling here, so the means need not be a MatMul column)
    assert info["op_counts"]["Conv"] == 2
    base = json.loads(cli("inspect", files["base"], "--json").stdout)["op_counts"]
    # window sums (rows, then columns); the folded steps pick the gain with Mul and Add
    assert info["op_counts"]["MatMul"] == base.get("MatMul", 0) + 2
    assert "target layer: conv1" in cli("inspect", files["anan"]).stdout


def test_predict_images_and_npy(files):
    result = cli("predict", files["anan"], *files["images"], files["npy"], "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["predictions"]
    assert len(rows) == 3 + 4
    assert all(0 <= r["probabilities"][0] <= 1 for r in rows)
    import anan_onnx

    session = anan_onnx.Session(files["anan"])
    expected = session.predict(np.load(files["npy"]))
    got = [r["probabilities"][0] for r in rows if ".npy[" in r["input"]]
    np.testing.assert_allclose(got, expected[:, 0], atol=1e-7)
    text = cli("predict", files["anan"], files["npy"])
    assert text.returncode == 0 and text.stdout.count("label=") == 4


def test_verify_passes_and_reports(files):
    result = cli("verify", files["anan"], "-n", "12", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["agreement"] == 1.0 and report["max_abs_diff"] <= 1e-5
    given = cli("verify", files["anan"], "--inputs", files["npy"], *files["images"])
    assert given.returncode == 0 and "PASS" in given.stdout


def test_verify_names_each_input_in_the_order_given(files):
    """The per-image verdicts name their input (file, .npy row), in argument order."""
    first, *_ = files["images"]
    given = cli("verify", files["anan"], "--inputs", first, files["npy"], "--margin")
    assert given.returncode == 0, given.stderr
    lines = [line for line in given.stdout.splitlines() if line.startswith("image ")]
    assert len(lines) == 1 + 4
    assert lines[0].startswith(f"image 0 ({first}): ")
    assert lines[1].startswith(f"image 1 ({files['npy']}[0]): ")
    assert lines[4].startswith(f"image 4 ({files['npy']}[3]): ")


def test_verify_detects_a_wrong_base(files, tmp_path):
    other = tmp_path / "other.onnx"
    onnx.save(build_cnn(VARIANT, head="sigmoid", seed=99), other)
    result = cli("verify", files["anan"], "--base", other, "-n", "16")
    assert result.returncode == 1 and "FAIL" in result.stdout


def test_convert_with_verify_prints_figures(files, tmp_path):
    result = cli(
        "convert",
        files["src"],
        "-o",
        tmp_path / "m.anan.onnx",
        "--verify",
        "8",
        "--rule",
        "additive",
        "--signal",
        "post",
        "--reduce",
        "max",
    )
    assert result.returncode == 0, result.stderr
    assert "verify       : PASS: 8/8" in result.stdout


# --- bad input -----------------------------------------------------------------------------


def _convert_refused(files, tmp_path, source, *extra, fragments=()):
    out = tmp_path / "out.anan.onnx"
    before = digest(source) if source.is_file() else None
    result = cli("convert", source, "-o", out, *extra)
    assert_refused(result, *fragments)
    assert not out.exists() and not (tmp_path / "out.base.onnx").exists()
    assert not list(tmp_path.glob(".*.tmp")), "partial output left"
    if before:
        assert digest(source) == before


def test_missing_file(files, tmp_path):
    _convert_refused(files, tmp_path, tmp_path / "nope.onnx", fragments=["no such file"])


def test_empty_file(files, tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    _convert_refused(files, tmp_path, tmp_path / "empty.onnx", fragments=["empty"])


def test_corrupt_file(files, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(3000))
    _convert_refused(files, tmp_path, bad, fragments=["not a readable ONNX model"])


def test_truncated_onnx(files, tmp_path):
    data = files["src"].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    _convert_refused(files, tmp_path, cut)


def test_model_without_conv(files, tmp_path):
    model = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [onnx.helper.make_tensor_value_info("x", 1, ["N", 3, 8, 8])],
            [onnx.helper.make_tensor_value_info("y", 1, ["N", 3, 8, 8])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
    )
    path = tmp_path / "noconv.onnx"
    onnx.save(model, path)
    _convert_refused(files, tmp_path, path, fragments=["no float Conv"])


def test_unknown_layer(files, tmp_path):
    _convert_refused(
        files,
        tmp_path,
        files["src"],
        "--layer",
        "conv9",
        fragments=["no Conv node named 'conv9'", "conv1"],
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--k", "0"], "k must be a positive integer"),
        (["--mu", "0"], "mu must be a positive integer"),
        (["--a", "-1"], "a must be >= 0"),
        (["--b", "nan"], "b must be finite"),
        (["--a", "inf"], "a must be finite"),
        (["--a", "abc"], "invalid float value"),
        (["--k", "2.5"], "invalid int value"),
        (["--rule", "magic"], "invalid choice"),
        (["--scale", "1/0"], "invalid number"),
        (["--opset", "9"], "opset 9 is not supported"),
        (["--signal", "post", "--layer", "conv1", "--k", "2", "--mu", "1"], None),
    ],
)
def test_invalid_parameters(files, tmp_path, args, fragment):
    if fragment is None:  # a valid combination: the control case of this table
        assert cli("convert", files["src"], "-o", tmp_path / "ok.anan.onnx", *args).returncode == 0
        return
    _convert_refused(files, tmp_path, files["src"], *args, fragments=[fragment])


def test_output_equal_to_input(files):
    before = digest(files["src"])
    assert_refused(cli("convert", files["src"], "-o", files["src"]), "is the input file")
    assert digest(files["src"]) == before


def test_output_directory_not_writable(files, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_refused(cli("convert", files["src"], "-o", blocker / "m.anan.onnx"), "cannot write")


def test_full_disk_leaves_no_partial_file(files, tmp_path, monkeypatch, capsys):
    import anan_onnx.model_io as model_io

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_io.os, "fsync", full)
    code = main(["convert", str(files["src"]), "-o", str(tmp_path / "m.anan.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_anan_model_passed_to_convert(files, tmp_path):
    _convert_refused(files, tmp_path, files["anan"], fragments=["already an ANAN model"])


def test_base_model_passed_to_verify(files):
    assert_refused(cli("verify", files["base"]), "not an ANAN model")


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((2, 3, 12, 11), np.float32), "12"),
        (np.zeros((2, 1, 11, 11), np.float32), "1"),
        (np.zeros((2, 11, 11, 3), np.float32), "NHWC"),
        (np.zeros((2, 3, 11, 11), np.uint8), "integer"),
        (np.full((2, 3, 11, 11), np.nan, np.float32), "NaN"),
        (np.full((2, 3, 11, 11), np.inf, np.float32), "Inf"),
    ],
)
def test_predict_bad_arrays(files, tmp_path, array, fragment):
    path = tmp_path / "x.npy"
    np.save(path, array)
    assert_refused(cli("predict", files["anan"], path), fragment)


def test_predict_corrupt_and_missing_images(files, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert_refused(cli("predict", files["anan"], files["images"][0], bad), "broken.png")
    assert_refused(cli("predict", files["anan"], tmp_path / "missing.jpg"), "missing.jpg")


def test_predict_unknown_provider(files):
    assert_refused(
        cli("predict", files["anan"], files["npy"], "--provider", "cuda"), "not available"
    )


def test_convert_layout_and_folding_options(tmp_path):
    src = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANT, pool="max"), src)
    out = tmp_path / "f.anan.onnx"
    result = cli("convert", src, "-o", out, "--fold-steps", "--scaling", "broadcast")
    assert result.returncode == 0, result.stderr
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert (meta["anan.steps"], meta["anan.scaling"]) == ("folded", "broadcast")
    clamp = cli(
        "convert", src, "-o", tmp_path / "c.anan.onnx", "--fold-steps", "--counter", "clamp"
    )
    assert clamp.returncode == 0, clamp.stderr
    assert "anan-onnx: warning: fold_steps ignored" in clamp.stderr
    # by default: folded where exact, silently unrolled where not; --no-fold-steps unrolls
    for args, steps in (([], "folded"), (["--no-fold-steps"], "unrolled")):
        plain = cli("convert", src, "-o", tmp_path / "d.anan.onnx", *args)
        assert plain.returncode == 0, plain.stderr
        assert read_metadata(str(tmp_path / "d.anan.onnx"))["steps"] == steps
    quiet = cli("convert", src, "-o", tmp_path / "q.anan.onnx", "--counter", "clamp")
    assert quiet.returncode == 0 and "fold_steps" not in quiet.stderr, quiet.stderr
    assert read_metadata(str(tmp_path / "q.anan.onnx"))["steps"] == "unrolled"
    assert_refused(
        cli("convert", src, "-o", tmp_path / "x.anan.onnx", "--scaling", "nchwc"), "--scaling"
    )
    assert not (tmp_path / "x.anan.onnx").exists()
