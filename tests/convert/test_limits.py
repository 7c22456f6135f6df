"""convert's limits and its all-or-nothing writes (issue 14, items 2-3 and the risks).

k and the graph size are bounded; gains that overflow float32 and NaN/Inf weights are
refused (by the one check that tune uses too); a SIGTERM leaves no temp file; a failed
``--verify`` leaves an existing model untouched; a Conv inside an If branch is not passed
over silently; a ``.keras`` zip is checked before it is extracted.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from anan_onnx.cli import main
from anan_onnx.convert.pipeline import convert_model, load_base
from anan_onnx.errors import AnanError
from anan_onnx.gains import check_gains, largest_gain
from anan_onnx.options import RunOptions
from anan_onnx.params import K_MAX, AnanParams
from anan_onnx.testing import VARIANTS, build_cnn


@pytest.fixture
def source(tmp_path) -> Path:
    onnx.save(build_cnn(VARIANTS["plain"], head="sigmoid", seed=4), tmp_path / "cnn.onnx")
    return tmp_path / "cnn.onnx"


# --- k and the graph size ---------------------------------------------------------------------


def test_k_is_bounded_with_the_reason():
    assert AnanParams(k=K_MAX, mu=2, a=1.0001).k == K_MAX
    for name in ("k", "mu"):
        with pytest.raises(AnanError, match=rf"{name} = 1000000 is too large: at most 1000"):
            AnanParams(**{name: 1_000_000})


def test_graph_size_is_bounded(source, monkeypatch):
    import anan_onnx.convert.limits as limits

    monkeypatch.setattr(limits, "MAX_GRAPH_NODES", 4)
    with pytest.raises(AnanError, match="the model has 6 nodes, more than the 4"):
        convert_model(load_base(source), AnanParams())


# --- float32 overflow ---------------------------------------------------------------------------


def test_largest_gain_follows_the_rules():
    assert largest_gain(AnanParams(k=4, mu=2, a=1.5, b=0.3)) == pytest.approx(1.5**3)
    assert largest_gain(AnanParams(k=4, mu=2, a=1.05, b=3.0)) == pytest.approx(2.0**3)  # |1-b|
    with pytest.warns(UserWarning, match="never trigger"):
        assert largest_gain(AnanParams(k=3, mu=5, a=9.0)) == 1.0
    additive = AnanParams(k=4, mu=2, a=0.5, b=0.2, rule="additive")
    assert largest_gain(additive) == pytest.approx(1.5**3)
    idle = AnanParams(k=4, mu=2, a=0.5, b=0.2, idle=1.0, rule="additive")
    assert largest_gain(idle) == pytest.approx(2.0**4)
    assert math.isinf(largest_gain(AnanParams(k=1000, mu=1, a=3.0)))  # 3^1000: no float64


def test_gain_check_is_tight_around_float32_max():
    w = np.ones((1, 1, 1, 1), np.float32)
    fine = AnanParams(k=2, mu=1, a=1e19)  # gain 1e38, response 1e38 < 3.4e38
    check_gains(fine, w)
    with pytest.raises(AnanError, match="the ANAN gains overflow float32"):
        check_gains(AnanParams(k=2, mu=1, a=2e19), w)  # 4e38
    with pytest.raises(AnanError, match="overflow float32"):
        check_gains(fine, w * 10)  # the weights push the response past it
    with pytest.raises(AnanError, match=r"hold 1 NaN or Inf"):
        check_gains(AnanParams(), np.array([[[[np.nan]]]], np.float32))


def test_convert_refuses_overflowing_gains_and_writes_nothing(source, capsys):
    before = sorted(p.name for p in source.parent.iterdir())
    assert main(["convert", str(source), "--a", "1e38"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1e+38^3 = 1e+114" in err
    assert sorted(p.name for p in source.parent.iterdir()) == before


def test_tune_refuses_a_grid_that_overflows(source):
    from anan_onnx.evaluation.tune import Grid, grid_search

    base = load_base(source)
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 256, (8, 3, 11, 11)) / 255).astype(np.float32)
    labels = np.array([0, 1] * 4)
    grid = Grid(k=(4,), mu=(2,), a=(1.05, 1e38), b=(0.3,))
    with pytest.raises(AnanError, match="the ANAN gains overflow float32"):
        grid_search(base, images, labels, grid, run=RunOptions(progress=False))


# --- all or nothing -----------------------------------------------------------------------------

_SLOW_RENAME = textwrap.dedent(
    """
    import os, sys, time
    real = os.replace
    def slow(src, dst):
        print("STAGED", flush=True)
        time.sleep(120)
        real(src, dst)
    os.replace = slow
    from anan_onnx.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_sigterm_during_convert_leaves_no_temp_file(source):
    folder = source.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RENAME, "convert", "cnn.onnx", "-o", "out.anan.onnx"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "STAGED"
        assert any(p.name.endswith(".tmp") for p in folder.iterdir())  # mid-write
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated by signal" in err
    assert sorted(p.name for p in folder.iterdir()) == ["cnn.onnx"]


def test_failed_verify_keeps_the_existing_model(source, monkeypatch, capsys):
    import anan_onnx.reference.verify as verify

    out = source.with_name("cnn.anan.onnx")
    assert main(["convert", str(source), "-o", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in source.parent.iterdir()}

    def failing(*args, **kwargs):
        return verify.VerifyReport(images=8, near_ties=0, agreeing=5, max_abs_diff=0.3)

    monkeypatch.setattr(verify, "verify_models", failing)
    capsys.readouterr()
    code = main(["convert", str(source), "-o", str(out), "--a", "1.4", "--verify", "8"])
    err = capsys.readouterr().err
    assert code == 1 and "verification failed" in err and "nothing was written" in err
    assert {p.name: p.read_bytes() for p in source.parent.iterdir()} == before


# --- control flow -------------------------------------------------------------------------------


def _branch_conv_model(main_conv: bool = True) -> onnx.ModelProto:
    """x -> If(cond){Conv 'branch_conv'}{Identity} -> [Conv 'main_conv' -> Relu] -> y."""
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "W")
    w2 = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "W2")
    then = helper.make_graph(
        [helper.make_node("Conv", ["x", "W2"], ["t"], name="branch_conv", pads=[1, 1, 1, 1])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"], name="keep")],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    nodes = [
        helper.make_node("If", ["cond"], ["h"], name="gate", then_branch=then, else_branch=other)
    ]
    last = "h"
    if main_conv:
        nodes += [
            helper.make_node("ReduceMean", ["h"], ["m"], name="gray", axes=[1], keepdims=1),
            helper.make_node("Conv", ["m", "W"], ["c"], name="main_conv"),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ]
        last = "y"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)],
        [w, w2, cond],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_conv_inside_an_if_branch_is_not_skipped_silently():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = convert_model(_branch_conv_model(), AnanParams())
    assert result.target_layer == "main_conv"
    messages = [str(w.message) for w in caught]
    assert any(
        "'branch_conv' in the then_branch of If 'gate' skipped" in m and "'main_conv'" in m
        for m in messages
    ), messages


def test_only_branch_convs_are_refused_by_name():
    with pytest.raises(AnanError, match="Convs are all inside If/Loop/Scan branches"):
        convert_model(_branch_conv_model(main_conv=False), AnanParams())
    with pytest.raises(AnanError, match="Conv 'branch_conv' is inside the then_branch"):
        convert_model(_branch_conv_model(), AnanParams(), layer="branch_conv")


# --- .keras archives ----------------------------------------------------------------------------


def _keras_zip(path: Path, config_bytes: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", b" " * config_bytes)
        z.writestr("model.weights.h5", b"")
    return path


def test_keras_archive_limits_are_checked_before_extraction(tmp_path, monkeypatch):
    import anan_onnx.model_io as model_io

    small = _keras_zip(tmp_path / "ok.keras", 1000)
    model_io.check_keras_archive(small)  # within the limits
    monkeypatch.setattr(model_io, "MAX_KERAS_JSON_BYTES", 500)
    with pytest.raises(AnanError, match="config.json expands to 1,000 bytes.*zip bomb"):
        model_io.check_keras_archive(small)
    monkeypatch.setattr(model_io, "MAX_KERAS_JSON_BYTES", 10_000)
    monkeypatch.setattr(model_io, "MAX_KERAS_TOTAL_BYTES", 900)
    with pytest.raises(AnanError, match="expands to 1,002 bytes, more than"):
        model_io.check_keras_archive(small)
    # through convert, before TensorFlow is even imported
    monkeypatch.setattr(model_io, "MAX_KERAS_JSON_BYTES", 500)
    with pytest.raises(AnanError, match="zip bomb"):
        load_base(small)
