"""What a newcomer meets first: defaults, messages and visible preprocessing.

A Keras file given where an ONNX model is needed, where convert writes without -o, what it
prints and records (preprocessing, class names), predict on an ONNX export that records no
preprocessing, opset conversions that say so, inspect's size with external data, unknown
options, and install hints that fit a source checkout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from anan_onnx import Session, read_metadata
from anan_onnx.cli import main
from anan_onnx.errors import AnanError
from anan_onnx.install_hint import install_hint, source_checkout
from anan_onnx.runtime.inputs import InputSpec
from anan_onnx.runtime.progress import Stages, bar
from anan_onnx.testing import VARIANTS, build_cnn
from anan_onnx.training_record import find_training_record, relative_root

REPO = Path(__file__).resolve().parents[2]
KERAS_FILE = REPO / "tests" / "fixtures" / "keras36_seq.keras"
H5_FILE = REPO / "tests" / "fixtures" / "keras36_seq.h5"


def run(capsys, *argv: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cnn(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"], head="sigmoid", seed=4), path)  # NCHW 3x11x11
    return path


@pytest.fixture
def converted(tmp_path: Path, cnn: Path, capsys) -> Path:
    out = tmp_path / "m.anan.onnx"
    code, _, err = run(capsys, "convert", cnn, "-o", out, "--classes", "cats,dogs")
    assert code == 0, err
    return out


# --- item 3: a Keras file where an ONNX model is needed -------------------------------------


@pytest.mark.parametrize("source", [KERAS_FILE, H5_FILE], ids=["keras", "h5"])
def test_keras_file_says_convert_first(capsys, source: Path, tmp_path: Path, converted: Path):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((1, 3, 11, 11), np.float32))
    for argv in (
        ["inspect", source],
        ["predict", source, npy],
        ["verify", source],
        ["verify", converted, "--base", source],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2 and not out, argv
        assert err.count("\n") == 1 and "damaged" not in err
        assert "this command needs an ONNX model: run `anan-onnx convert" in err, err
    with pytest.raises(AnanError, match="run `anan-onnx convert"):
        Session(source)


# --- items 10, 13, 14: convert's output --------------------------------------------------------


def test_convert_prints_and_records_preprocessing_and_classes(capsys, converted: Path):
    meta = read_metadata(converted)  # a path, like Session and verify_models
    assert json.loads(meta["classes"]) == ["cats", "dogs"]
    assert json.loads(read_metadata(converted.with_name("m.base.onnx"))["classes"]) == [
        "cats",
        "dogs",
    ]
    code, out, err = run(capsys, "inspect", converted)
    assert code == 0, err
    assert "classes     : cats, dogs" in out
    assert "image input : NCHW 11x11x3, input = pixel (0-255) * 1/255 + 0" in out


def test_convert_states_what_it_recorded(capsys, cnn: Path, tmp_path: Path):
    code, out, err = run(capsys, "convert", cnn, "-o", tmp_path / "a.anan.onnx",
                         "--scale", "2/255", "--offset", "-1")  # fmt: skip
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.strip().startswith("input"))
    assert "NCHW 11x11x3" in line and "* 0.00784314 - 1" in line
    assert not err  # stage lines only on a terminal (pytest's stderr is not one)


def test_convert_without_output_writes_to_the_current_directory(
    capsys, cnn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run(capsys, "convert", cnn)
    assert code == 0, err
    assert (work / "cnn.anan.onnx").is_file() and (work / "cnn.base.onnx").is_file()
    assert not (cnn.parent / "cnn.anan.onnx").exists()


@pytest.mark.parametrize(
    "classes, message",
    [
        ("a,b,c", "3 class names (a, b, c) for a model with one sigmoid output (2 classes)"),
        ("a,a", "class names must be distinct"),
        ("a,", "neither a folder nor a comma list"),
    ],
)
def test_bad_classes_are_refused(capsys, cnn: Path, tmp_path: Path, classes: str, message: str):
    out = tmp_path / "bad.anan.onnx"
    code, _, err = run(capsys, "convert", cnn, "-o", out, "--classes", classes)
    assert code == 2 and message in err and not out.exists()


def test_classes_from_a_data_folder_and_from_training_json(capsys, cnn: Path, tmp_path: Path):
    data = tmp_path / "data"
    for name in ("zebra", "ant"):
        (data / "train" / name).mkdir(parents=True)
    code, _, err = run(capsys, "convert", cnn, "-o", tmp_path / "f.anan.onnx", "--classes", data)
    assert code == 0, err
    assert json.loads(read_metadata(tmp_path / "f.anan.onnx")["classes"]) == ["ant", "zebra"]
    cnn.with_name("cnn.training.json").write_text(json.dumps({"classes": ["no", "yes"]}))
    code, out, err = run(capsys, "convert", cnn, "-o", tmp_path / "t.anan.onnx")
    assert code == 0, err
    assert "classes      : no, yes" in out


def test_unknown_option_points_to_the_subcommand_help(capsys, cnn: Path):
    code, _, err = run(capsys, "convert", cnn, "--bogus")
    assert code == 2 and "(see anan-onnx convert --help)" in err
    code, _, err = run(capsys, "inspect", cnn, "--frobnicate", "1")
    assert code == 2 and "--frobnicate 1 (see anan-onnx inspect --help)" in err


def test_newer_opset_is_converted_with_a_warning(capsys, tmp_path: Path):
    model = build_cnn(VARIANTS["plain"], head="sigmoid", seed=4)
    model.opset_import[0].version = 20
    model.ir_version = 10
    source = tmp_path / "op20.onnx"
    onnx.save(model, source)
    code, _, err = run(capsys, "convert", source, "-o", tmp_path / "o.anan.onnx")
    assert code == 0, err
    assert "has opset 20; anan-onnx writes opsets 13-18, so it is converted to opset 18" in err
    anan = onnx.load(tmp_path / "o.anan.onnx")
    assert next(o.version for o in anan.opset_import if o.domain in ("", "ai.onnx")) == 18


# --- item 13: predict on an ONNX export that records no preprocessing ---------------------------


def test_predict_reads_the_input_size_from_the_shape(capsys, cnn: Path, tmp_path: Path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (11, 11, 3), np.uint8)
    image = tmp_path / "img.png"
    Image.fromarray(pixels).save(image)
    code, out, err = run(capsys, "predict", cnn, image, "--json")
    assert code == 0, err
    assert "records no preprocessing: using NCHW 11x11x3, x = pixel * 0.00392157 + 0" in err
    assert "1/255 assumed" in err
    got = json.loads(out)["predictions"][0]["probabilities"]
    batch = (pixels.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
    expected = Session(cnn).predict(np.ascontiguousarray(batch))  # by hand: NCHW, /255
    np.testing.assert_allclose(got, expected[0], rtol=1e-6)


def test_spec_from_shape():
    assert InputSpec.from_shape([None, 64, 64, 3]) == InputSpec("NHWC", 64, 64, 3)
    assert InputSpec.from_shape(["n", 1, 28, 28]) == InputSpec("NCHW", 28, 28, 1)
    assert InputSpec.from_shape(["n", "h", "w", 3]) is None  # size not fixed
    assert InputSpec.from_shape([1, 10]) is None


# --- item 13: inspect counts external data ------------------------------------------------------


def test_inspect_counts_external_data(capsys, cnn: Path, tmp_path: Path):
    model = onnx.load(cnn)
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save(model, folder / "m.onnx", save_as_external_data=True, location="m.data",
              size_threshold=0)  # fmt: skip
    total = (folder / "m.onnx").stat().st_size + (folder / "m.data").stat().st_size
    assert (folder / "m.data").stat().st_size > (folder / "m.onnx").stat().st_size
    code, out, err = run(capsys, "inspect", folder / "m.onnx", "--json")
    assert code == 0, err
    assert json.loads(out)["bytes"] == total


# --- items 5, 8, 12: hints, training.json roots, progress -----------------------------------------


def test_install_hint_fits_a_source_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert source_checkout() == REPO
    monkeypatch.chdir(REPO)
    assert install_hint("keras") == "pip install -e '.[keras]'"
    monkeypatch.chdir(tmp_path)
    assert install_hint("eval") == f"pip install -e '{REPO}[eval]'"
    monkeypatch.setattr("anan_onnx.install_hint.source_checkout", lambda: None)
    assert install_hint("keras") == "pip install 'anan-onnx[keras]'"


def test_no_hint_names_the_unpublished_package():
    for path in (REPO / "anan_onnx").rglob("*.py"):
        if path.name != "install_hint.py":
            assert "pip install 'anan-onnx[" not in path.read_text(), path


def test_training_json_roots_are_relative_to_the_file(tmp_path: Path):
    models, data = tmp_path / "repo" / "models", tmp_path / "shared" / "data"
    models.mkdir(parents=True)
    data.mkdir(parents=True)
    record = models / "m.training.json"
    assert relative_root(data, record) == "../../shared/data"
    record.write_text(json.dumps({"data_root": "../../shared/data", "classes": ["a", "b"]}))
    assert find_training_record(models / "m.keras")["data_root"] == str(data)
    record.write_text(json.dumps({"data_root": "/somewhere/else"}))  # old records: absolute
    assert find_training_record(models / "m.keras")["data_root"] == "/somewhere/else"


def test_bundled_training_json_is_portable():
    text = (REPO / "models" / "catsdogs_cnn.training.json").read_text()
    assert '"/' not in text.replace('"/"', "")  # no absolute path anywhere
    record = find_training_record(REPO / "models" / "catsdogs_cnn.keras")
    assert record["data_root"] == os.path.normpath(REPO.parent / "shared/data/cats_dogs")


def test_progress_only_on_a_terminal(capsys):
    items = [1, 2, 3]
    assert bar(items) is items  # stderr is not a terminal under pytest
    Stages()("exporting")
    assert capsys.readouterr().err == ""
    Stages(enabled=True)("exporting")
    assert "exporting ..." in capsys.readouterr().err
