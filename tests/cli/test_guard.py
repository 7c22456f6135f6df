"""Reliability, round three (issue 23, defects 4-10, 13, 14): no forged output lines, every
size taken from input bounded before it is allocated, and one line instead of a traceback.

Each test names its defect. Cases that must prove bounded memory run the CLI in a
subprocess under ``RLIMIT_AS``; the others call :func:`anan_onnx.cli.main` in-process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data

from anan_onnx import limits
from anan_onnx.cli import main
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.grid import Grid, parse_values
from anan_onnx.evaluation.npz_source import NpzSource
from anan_onnx.metadata import write_metadata
from anan_onnx.reference.verify import random_batches, random_inputs
from anan_onnx.runtime.session import Session
from anan_onnx.testing import VARIANTS, build_cnn
from anan_onnx.text import shown
from anan_onnx.training_record import check_record

ANAN, BASE, SOURCE = "cnn.anan.onnx", "cnn.base.onnx", "cnn.onnx"  # NCHW 3x11x11, sigmoid
FORGED = "cats\n/etc/shadow\t0.000001\tlabel=0\tclass=cats"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("guard")
    onnx.save(build_cnn(VARIANTS["plain"], head="sigmoid", seed=4), root / SOURCE)
    assert main(["convert", str(root / SOURCE), "-o", str(root / ANAN)]) == 0
    np.save(root / "x.npy", np.zeros((2, 3, 11, 11), np.float32))
    return root


def _with_metadata(models: Path, name: str, **values: str) -> Path:
    """A copy of the ANAN model (or another file of the folder) with metadata changed."""
    model = onnx.load(str(models / ANAN))
    write_metadata(model, values)
    onnx.save(model, str(models / name))
    return models / name


def _refused(capsys, args: list[str], fragment: str) -> str:
    """Runs the CLI; asserts exit 2 and exactly one error line containing ``fragment``."""
    status = main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("anan-onnx: error: "), err
    assert fragment in err[0], err[0]
    return err[0]


def _cli_limited(folder: Path, *args: str, memory: int = 3 * 2**30, timeout: float = 60):
    """The CLI in a subprocess whose address space is limited to ``memory`` bytes."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-m", "anan_onnx.cli", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=limit,
    )


# --- defect 4: forged output lines ---------------------------------------------------------


def test_shown_escapes_every_control_character():
    assert shown(FORGED) == "cats\\n/etc/shadow\\t0.000001\\tlabel=0\\tclass=cats"
    assert shown("\x1b]0;pwned\x07\x1b[2J") == "\\x1b]0;pwned\\x07\\x1b[2J"
    assert shown("a\u202eb\u2028c") == "a\\u202eb\\u2028c"
    assert shown("chats é 猫") == "chats é 猫"


def test_predict_cannot_forge_a_row(models, capsys):
    model = _with_metadata(models, "forged.anan.onnx", classes=json.dumps([FORGED, "dogs\x1b[31m"]))
    assert main(["predict", str(model), str(models / "x.npy")]) == 0
    out = capsys.readouterr().out
    rows = out.splitlines()
    assert len(rows) == 2, out  # one row per input, however the names look
    assert all(r.count("\t") == 3 for r in rows), rows
    assert "\x1b" not in out and "\\n/etc/shadow" in out or "dogs\\x1b[31m" in out


def test_predict_escapes_a_file_name(models, capsys):
    odd = models / "a\tb\x1b[2J.npy"
    np.save(odd, np.zeros((1, 3, 11, 11), np.float32))
    assert main(["predict", str(models / ANAN), str(odd)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and out.count("\t") == 2, out


def test_inspect_escapes_and_truncates_metadata(models, capsys):
    model = _with_metadata(
        models, "inspect.anan.onnx", source="\x1b]52;c;cGF5bG9hZA==\x07", note="x" * 100_000
    )
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]52" in out
    assert "more characters; see --json" in out and len(out) < 20_000


@pytest.mark.parametrize(
    "classes,fragment",
    [("cats\n/etc/shadow,dogs", "control character \\n"), ("a" * 500 + ",b", "more than 200")],
)
def test_convert_refuses_unprintable_or_long_classes(models, capsys, classes, fragment):
    out = models / "classes.anan.onnx"
    _refused(capsys, ["convert", models / SOURCE, "-o", out, "--classes", classes], fragment)
    assert not out.exists()


# --- defects 5 and 14: external data --------------------------------------------------------


def _external_model(folder: Path, data_name: str, **entry: int) -> Path:
    """The source CNN with its first initializer stored in ``data_name`` (not written)."""
    model = build_cnn(VARIANTS["plain"], head="sigmoid", seed=4)
    tensor = model.graph.initializer[0]
    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    set_external_data(tensor, data_name, **entry)
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    path = folder / f"ext_{data_name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_is_read_only_as_far_as_the_tensor(tmp_path):
    """A small tensor pointing at a 3 GB (sparse) file: 6.4 GB before; now its bytes only."""
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(3 * 2**30)
    model = _external_model(tmp_path, "big.bin")
    proc = _cli_limited(tmp_path, "inspect", model.name, memory=2 * 2**30)
    assert proc.returncode == 0, proc.stderr
    assert "base model" in proc.stdout


@pytest.mark.parametrize(
    "setup,fragment",
    [
        (lambda d: (d / "short.bin").write_bytes(b"\0" * 8) and "short.bin", "is truncated"),
        (lambda d: os.mkfifo(d / "fifo.bin") or "fifo.bin", "is a FIFO (named pipe)"),
    ],
    ids=["truncated", "fifo"],
)
def test_bad_external_data_is_one_line(tmp_path, capsys, setup, fragment):
    name = setup(tmp_path)
    model = _external_model(tmp_path, name)
    for command in (["inspect", model], ["convert", model, "-o", tmp_path / "o.anan.onnx"]):
        _refused(capsys, command, fragment)
    assert not (tmp_path / "o.anan.onnx").exists()


def test_external_length_must_match_the_tensor(tmp_path, capsys):
    (tmp_path / "w.bin").write_bytes(b"\0" * 4096)
    model = _external_model(tmp_path, "w.bin", length=4096)
    _refused(capsys, ["inspect", model], "length=4096")


def test_external_data_total_is_bounded(tmp_path, capsys, monkeypatch):
    (tmp_path / "w.bin").write_bytes(b"\0" * 4096)
    model = _external_model(tmp_path, "w.bin")
    monkeypatch.setenv("ANAN_MAX_EXTERNAL_DATA_BYTES", "16")
    _refused(capsys, ["inspect", model], "ANAN_MAX_EXTERNAL_DATA_BYTES")


# --- defect 6: grid ranges --------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0:1e9", "0:1:1e-300"])
def test_huge_grid_range_is_refused_before_allocation(text):
    start = time.perf_counter()
    with pytest.raises(AnanError, match="more than the limit of 10,000.*--max-configs"):
        parse_values("a", text)
    assert time.perf_counter() - start < 1


def test_grid_size_is_counted_and_the_limit_can_be_raised():
    grid = Grid.from_strings(a="1:2:0.1", b="0:1:0.1", rules="multiplicative,additive")
    assert grid.size == sum(len(grid.points(o.rule)) for o in grid.option_sets())
    with pytest.raises(AnanError, match="grid configurations"):
        Grid.from_strings(a="1:2:0.01", b="0:1:0.01", k="1:9")
    assert Grid.from_strings(100_000, a="1:2:0.01", b="0:1:0.01", k="1:2").size > 10_000


def test_tune_refuses_a_huge_grid_at_once(models, capsys):
    _refused(capsys, ["tune", models / ANAN, models, "--a", "0:1e9"], "--max-configs")


@pytest.mark.parametrize("command", ["tune", "evaluate"])
def test_batch_size_zero_is_refused(models, capsys, command):
    # checked by RunOptions (anan_onnx/options.py) before any model is loaded
    assert main([command, str(models / SOURCE), str(models), "--batch-size", "0"]) == 2
    assert "batch_size must be a positive integer" in capsys.readouterr().err


# --- defect 7: verify -n -------------------------------------------------------------------


def test_random_inputs_are_made_one_batch_at_a_time(models):
    session = Session(models / ANAN)
    shapes = [b.shape[0] for b in random_batches(session, 10, 0, 4)]
    assert shapes == [4, 4, 2]
    first = next(random_batches(session, 10, 0, 4))
    assert first.dtype == np.float32 and first.min() >= 0 and first.max() <= 1


def test_random_inputs_in_one_array_are_bounded(models, monkeypatch):
    monkeypatch.setenv("ANAN_MAX_BATCH_BYTES", str(2**20))
    with pytest.raises(AnanError, match="ANAN_MAX_BATCH_BYTES"):
        random_inputs(Session(models / ANAN), 20_000)


def test_verify_many_random_inputs_in_bounded_memory(models):
    proc = _cli_limited(models, "verify", ANAN, "-n", "3000", "--batch-size", "64")
    assert proc.returncode == 0, proc.stderr
    assert "3000" in proc.stdout


# --- defect 8: .npz decompression bomb ----------------------------------------------------


def _npz_with_header(path: Path, shape: tuple[int, ...]) -> None:
    """An .npz whose train_images member claims ``shape`` but holds 16 bytes."""
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("train_images.npy", "w") as f,
    ):
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 16)


def test_npz_header_claiming_more_than_it_holds_is_refused(tmp_path):
    _npz_with_header(tmp_path / "bomb.npz", (100_000, 224, 224, 3))
    with pytest.raises(AnanError, match="declares 15,052,800,000 bytes"):
        NpzSource(tmp_path / "bomb.npz")


def test_npz_expanded_size_is_bounded(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "zeros.npz", test_images=np.zeros((64, 28, 28), np.uint8))
    monkeypatch.setenv("ANAN_MAX_NPZ_BYTES", "1000")
    with pytest.raises(AnanError, match="ANAN_MAX_NPZ_BYTES"):
        NpzSource(tmp_path / "zeros.npz")


# --- defect 9: sizes ---------------------------------------------------------------------


def test_recorded_size_contradicting_the_graph_is_refused_before_reading(models, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((11, 11, 3), np.uint8)).save(models / "ok.png")
    model = _with_metadata(models, "big.anan.onnx", height="4000", width="4000")
    _refused(capsys, ["predict", model, models / "ok.png"], "contradicts the model")


def _with_input_dims(models: Path, name: str, dims: list[int]) -> Path:
    model = onnx.load(str(models / SOURCE))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim[1:], dims, strict=True):
        dim.dim_value = value
    onnx.save(model, str(models / name))
    return models / name


@pytest.mark.parametrize(
    "dims,fragment",
    [
        ([3, 100_000, 100_000], "input elements per image"),
        ([3, -11, 11], "a dimension below 1"),
        ([3, 0, 11], "a dimension below 1"),
        ([4, 11, 11], "channels must be 1 (grayscale) or 3"),
    ],
    ids=["huge", "negative", "zero", "four-channel"],
)
def test_convert_refuses_inputs_predict_could_not_take(models, capsys, dims, fragment):
    source = _with_input_dims(models, "dims.onnx", dims)
    _refused(
        capsys, ["convert", source, "-o", models / "dims.anan.onnx", "--verify", "2"], fragment
    )
    assert not (models / "dims.anan.onnx").exists()


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["convert", SOURCE, "-o", "b.anan.onnx", "--batch", "10000000"], "ANAN_MAX_BATCH_SIZE"),
        (["predict", ANAN, "x.npy", "--batch-size", "1000000"], "ANAN_MAX_BATCH_SIZE"),
        (["predict", ANAN, "x.npy", "--threads", "100000"], "ANAN_MAX_THREADS"),
    ],
    ids=["convert-batch", "predict-batch-size", "threads"],
)
def test_sizes_from_options_are_bounded(models, capsys, args, fragment, monkeypatch):
    monkeypatch.chdir(models)
    start = time.perf_counter()
    _refused(capsys, args, fragment)
    assert time.perf_counter() - start < 10
    assert not (models / "b.anan.onnx").exists()


def test_batch_bytes_are_bounded(models, capsys, monkeypatch):
    monkeypatch.setenv("ANAN_MAX_BATCH_BYTES", str(2**16))
    _refused(
        capsys, ["predict", models / ANAN, models / "x.npy", "--batch-size", "100"], "of inputs"
    )


def test_positive_int_refuses_what_is_not_one():
    assert limits.positive_int("n", 4.0) == 4 and limits.positive_int("n", np.int64(3)) == 3
    for bad in (0, -1, 2.5, True, "4", float("nan"), None):
        with pytest.raises(AnanError, match="n must be a positive integer"):
            limits.positive_int("n", bad)


def test_session_predict_batch_size_float_is_one_line(models):
    with pytest.raises(AnanError, match="batch_size must be a positive integer, got 2.5"):
        Session(models / ANAN).predict(np.zeros((2, 3, 11, 11), np.float32), batch_size=2.5)


def test_a_limit_from_the_environment_must_be_a_number(monkeypatch):
    monkeypatch.setenv("ANAN_MAX_THREADS", "lots")
    with pytest.raises(AnanError, match="ANAN_MAX_THREADS='lots' is not a positive integer"):
        limits.thread_count(2)


# --- defect 10: Ray address ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment"])
def test_unreachable_ray_address_is_refused_within_seconds(models, capsys, monkeypatch, how):
    pytest.importorskip("ray")
    out = models / "ray_out"
    args = ["predict", models / ANAN, models / "x.npy", "--engine", "ray", "--output", out]
    if how == "option":
        args += ["--address", "127.0.0.1:1"]
    else:
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    start = time.perf_counter()
    _refused(capsys, args, "no Ray cluster answers at 127.0.0.1:1")
    assert time.perf_counter() - start < 15 and not out.exists()


# --- defect 13: one line instead of a traceback -------------------------------------------


@pytest.mark.parametrize("name", ["", "/etc/passwd", "..", "../cnn.base.onnx", None])
def test_recorded_base_model_that_is_no_file_name(models, capsys, name):
    model = onnx.load(str(models / ANAN))
    if name is None:
        kept = [p for p in model.metadata_props if p.key != "anan.base_model"]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
    else:
        write_metadata(model, {"base_model": name})
    onnx.save(model, str(models / "named.anan.onnx"))
    _refused(capsys, ["verify", models / "named.anan.onnx"], "not a file name beside it")


def test_missing_target_layer_and_bad_scale(models, capsys):
    model = onnx.load(str(models / ANAN))
    kept = [p for p in model.metadata_props if p.key != "anan.target_layer"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(models / "notarget.anan.onnx"))
    _refused(capsys, ["verify", models / "notarget.anan.onnx"], "records no target_layer")
    model = _with_metadata(models, "scale.anan.onnx", scale="abc")
    _refused(capsys, ["verify", model], "scale='abc' is not a")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["inspect", ANAN], ["predict", ANAN, "x.npy"]])
def test_stdout_on_a_full_disk_is_one_line(models, command):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "anan_onnx.cli", *command],
            cwd=models,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
        )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr


@pytest.mark.parametrize(
    "record,fragment",
    [
        ({"folds": "fold1"}, "folds must be a list of objects"),
        ({"folds": {"model": "x"}}, "folds must be a list of objects"),
        ({"train_labels": ["cat"]}, "train_labels must be a list of non-negative integers"),
        ({"classes": 2}, "classes must be a list of strings"),
        ({"folds": [{"val_indices": [1e30]}]}, "folds[0].val_indices must be a list"),
        ({"folds": [{"val_indices": [-1]}]}, "folds[0].val_indices must be a list"),
        ({"folds": [{"val_indices": [1.0]}]}, "folds[0].val_indices must be a list"),
        ([], "holds no JSON object"),
    ],
)
def test_malformed_training_record_is_one_line(record, fragment):
    with pytest.raises(AnanError) as info:
        check_record(record, "training.json")
    assert fragment in str(info.value)


def test_deeply_nested_training_record_is_one_line(models, capsys):
    (models / "cnn.training.json").write_text("[" * 100_000 + "]" * 100_000)
    try:
        _refused(
            capsys, ["convert", models / SOURCE, "-o", models / "n.anan.onnx"], "nested too deeply"
        )
    finally:
        (models / "cnn.training.json").unlink()


# --- risks settled ------------------------------------------------------------------------


def test_predict_refuses_a_model_with_two_outputs(models, capsys):
    model = onnx.load(str(models / SOURCE))
    first = model.graph.node[0].output[0]
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(first, onnx.TensorProto.FLOAT, None)
    )
    onnx.save(model, str(models / "two.onnx"))
    _refused(capsys, ["predict", models / "two.onnx", models / "x.npy"], "the model has 2 outputs")


def test_a_file_name_with_a_leading_dash_gets_the_hint(models, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(models / ANAN), "-x.png"])
    assert exit_info.value.code == 2
    assert "goes after --" in capsys.readouterr().err


def test_predict_text_reports_every_unreadable_file_and_runs_the_rest(models, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((11, 11, 3), np.uint8)).save(models / "good.png")
    (models / "bad1.png").write_bytes(b"not a png")
    (models / "bad2.npy").write_bytes(b"not an npy")
    files = ["bad1.png", "good.png", "bad2.npy", "x.npy"]
    status = main(["predict", str(models / ANAN), *(str(models / f) for f in files)])
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert status == 2
    # a row per bad file and per image (x.npy holds 2), in the order given
    firsts = [Path(r.split("\t")[0]).name for r in rows]
    assert firsts == ["bad1.png", "good.png", "bad2.npy", "x.npy[0]", "x.npy[1]"], rows
    assert ["error=" in r for r in rows] == [True, False, True, False, False]
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "2 input file(s) could not be read" in err[0], err
    assert "bad1.png" in err[0], err
