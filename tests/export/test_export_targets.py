"""``anan-onnx export --target web|mobile|ort`` on the bundled model and a generated CNN:
the files each target writes, their exactness (against the input model and the literal
reference, modulation included), the .ort file and its operator config, the sidecar, the
recorded metadata and the mobile-usability summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from anan_onnx import LiteralReference
from anan_onnx.metadata import read_metadata
from anan_onnx.params import AnanParams
from anan_onnx.reference.verify import random_inputs
from anan_onnx.runtime.session import Session
from anan_onnx.sidecar import sidecar

from process_helpers import tail

TARGETS = ("web", "mobile", "ort")
SUFFIXES = {
    "web": [".onnx", ".json"],
    "mobile": [".onnx", ".ort", ".config", ".json"],
    "ort": [".onnx", ".ort", ".config", ".json"],
}


@pytest.fixture(scope="module", params=TARGETS)
def exported(request, source_model: Path, cli, tmp_path_factory) -> tuple[str, Path, Path, str]:
    """(target, source model, output folder, CLI stdout) for each target and model."""
    target = request.param
    out = tmp_path_factory.mktemp(f"export_{target}")
    proc = cli("export", str(source_model), "--target", target, "-o", str(out))
    assert proc.returncode == 0, tail(proc)
    assert proc.stderr == "", proc.stderr  # nothing but the summary, and that on stdout
    return target, source_model, out, proc.stdout


def _files(out: Path) -> dict[str, Path]:
    return {p.suffix: p for p in out.iterdir()}


def _reference(source: Path, batch: np.ndarray):
    meta = read_metadata(onnx.load(source))
    base = onnx.load(source.with_name(meta["base_model"]))
    ref = LiteralReference(base, meta["target_layer"], AnanParams.from_strings(meta)).run(batch)
    base_out = Session(base).predict(batch)
    return ref, base_out


def _run_batched(path: Path, batch: np.ndarray, size: int | None) -> np.ndarray:
    session = Session(path)
    step = size or len(batch)
    return np.concatenate(
        [session.predict(batch[i : i + step]) for i in range(0, len(batch), step)]
    )


def test_writes_the_targets_files_and_nothing_else(exported) -> None:
    target, source, out, stdout = exported
    files = sorted(p.name for p in out.iterdir())  # no staging folder or temp file is left
    stem = source.name.removesuffix(".onnx")
    expected = {
        ".onnx": source.name,
        ".ort": f"{stem}.ort",
        ".config": f"{stem}.required_operators_and_types.config",
        ".json": f"{stem.removesuffix('.anan')}.anan.json",
    }
    assert files == sorted(expected[s] for s in SUFFIXES[target])
    for name in files:
        assert f"wrote      : {out / name}" in stdout


def test_exact_against_the_literal_reference_and_differs_from_base(exported) -> None:
    target, source, out, _ = exported
    files = _files(out)
    model = onnx.load(files[".onnx"])
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    size = batch_dim.dim_value or None
    assert (size == 1) if target == "mobile" else (size is None)  # the batch each keeps
    if target == "mobile":  # static shapes: the batch-axis shape arithmetic is folded
        assert not {"Shape", "Gather"} & {n.op_type for n in model.graph.node}
    images = random_inputs(Session(source), 6, seed=11)
    ref, base_out = _reference(source, images)
    keep = ~ref.near_tie
    changed = np.abs(ref.outputs[0] - base_out).reshape(6, -1).max(axis=1) > 1e-4
    assert (changed & keep).any(), "the test images must exercise the astrocytes"
    source_out = Session(source).predict(images)
    for suffix in [s for s in SUFFIXES[target] if s in (".onnx", ".ort")]:
        got = _run_batched(files[suffix], images, size)
        assert np.abs(got - source_out).max() <= 1e-5, suffix
        assert np.abs(got[keep] - ref.outputs[0][keep]).max() <= 1e-5, suffix
        moved = np.abs(got - base_out).reshape(6, -1).max(axis=1) > 1e-4
        assert (moved[changed & keep]).all(), f"{suffix} lost the modulation"


def test_records_target_and_changes_in_metadata(exported) -> None:
    target, source, out, _ = exported
    md = read_metadata(onnx.load(_files(out)[".onnx"]))
    source_md = read_metadata(onnx.load(source))
    assert md["export_target"] == target
    assert md["export_batch"] == ("1" if target == "mobile" else "dynamic")
    assert md["export_source_file"] == source.name
    assert md["export_simplifier"] in ("onnxsim", "onnxslim")
    assert "batch" in md["export_changes"]
    # every anan.* key of the input is kept (the batch is updated where it was fixed)
    for key, value in source_md.items():
        if key != "batch":
            assert md[key] == value, key
    if target == "mobile":
        assert md["batch"] == "1"


def test_sidecar_round_trips(exported) -> None:
    _, _, out, _ = exported
    files = _files(out)
    document = json.loads(files[".json"].read_text())
    assert document == sidecar(files[".onnx"])
    assert document["metadata"] == read_metadata(onnx.load(files[".onnx"]))
    assert document["params"]["k"] == int(document["metadata"]["k"])


def test_ort_file_runs_and_config_lists_the_models_ops(exported) -> None:
    target, _, out, _ = exported
    files = _files(out)
    if target == "web":  # onnxruntime-web loads the .onnx: no .ort, no minimal-build config
        assert ".ort" not in files and ".config" not in files
        return
    session = Session(files[".ort"])
    assert session.is_anan and session.metadata["export_target"] == target  # metadata kept
    config = files[".config"].read_text()
    assert config.splitlines()[1] == f"# - {files['.ort'].name}"  # no temporary paths
    listed = set(re.findall(r"([A-Za-z]+)(?:\{|,|$)", config.replace(";", "\n"), re.M))
    model = onnx.load(files[".onnx"])
    anan_ops = {n.op_type for n in model.graph.node if n.name.startswith("anan/")}
    assert anan_ops <= listed | {"Relu", "Sigmoid"}, anan_ops - listed  # fused into FusedConv
    assert anan_ops - {"Relu", "Sigmoid"} <= listed
    assert {"Conv", "Mul", "Add"} <= listed


def test_mobile_summary(exported) -> None:
    target, source, _, stdout = exported
    lines = [line for line in stdout.splitlines() if line.startswith("  mobile     : ")]
    if target != "mobile":
        assert lines == []
        return
    assert len(lines) == 3 and [line.split(":")[1].strip() for line in lines] == [
        "NNAPI",
        "CoreML NeuralNetwork",
        "CoreML MLProgram",
    ]
    for line in lines:
        assert re.search(r"all [1-9]\d* anan/\* nodes supported", line), line
        if source.name == "model.anan.onnx":  # the bundled model: the whole graph, one partition
            found = re.search(r": (\d+)/(\d+) nodes in 1 partition; unsupported ops: none", line)
            assert found and found[1] == found[2], line
