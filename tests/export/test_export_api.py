"""``anan_onnx.export.export_model``: each simplifier exact, a fixed --batch, and the
all-or-nothing write when the exactness check fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from anan_onnx.errors import AnanError
from anan_onnx.export import export_model, pipeline
from anan_onnx.export import simplify as simplify_module
from anan_onnx.metadata import read_metadata
from anan_onnx.runtime.session import Session
from anan_onnx.testing import VARIANTS, build_cnn, random_batch


@pytest.mark.parametrize("simplifier", ["onnxsim", "onnxslim", "none"])
def test_each_simplifier_is_checked_exact(generated_model: Path, tmp_path: Path, simplifier):
    result = export_model(generated_model, "mobile", tmp_path, simplifier=simplifier)
    assert result.simplifier == simplifier
    assert [r.passed for r in result.exactness] == [True, True]  # .onnx and .ort
    assert all(r.changed > 0 and r.changed_kept == r.changed for r in result.exactness)
    model = onnx.load(result.files[0])
    assert read_metadata(model)["export_simplifier"] == simplifier
    ops = {n.op_type for n in model.graph.node}
    if simplifier == "none":
        assert result.nodes_after == result.nodes_before
    else:  # with the batch fixed, any batch-axis shape arithmetic is folded away
        assert "Shape" not in ops and result.nodes_after <= result.nodes_before


def test_fixed_batch_for_web(generated_model: Path, tmp_path: Path) -> None:
    result = export_model(generated_model, "web", tmp_path, batch=4)
    model = onnx.load(result.files[0])
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert read_metadata(model)["batch"] == "4" and result.batch == 4
    assert "fixed by --batch" in result.batch_note
    assert result.exactness[0].images % 4 == 0


def test_nothing_is_written_when_the_export_is_not_exact(
    generated_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = simplify_module.simplify

    def broken(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
        """A simplifier with a bug: it scales the largest weight tensor by 1.01."""
        model = real(model, name)
        floats = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
        init = max(floats, key=lambda i: int(np.prod(i.dims)))
        values = numpy_helper.to_array(init) * np.float32(1.01)
        init.CopyFrom(numpy_helper.from_array(values, init.name))
        return model

    monkeypatch.setattr(pipeline.simplify, "simplify", broken)
    out = tmp_path / "out"
    with pytest.raises(AnanError, match="not exact.*nothing was written"):
        export_model(generated_model, "ort", out)
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("kept")
    with pytest.raises(AnanError, match="not exact"):
        export_model(generated_model, "ort", existing)
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]  # no temp, no staging


def test_cli_choices_match_the_package() -> None:
    from anan_onnx.cli import export as cli_export
    from anan_onnx.export import SIMPLIFIERS, TARGETS

    assert tuple(TARGETS) == cli_export._TARGETS
    assert cli_export._SIMPLIFIERS == SIMPLIFIERS


def test_simplifier_names() -> None:
    assert simplify_module.resolve("auto") in ("onnxsim", "onnxslim", "none")
    with pytest.raises(AnanError, match="unknown simplifier"):
        simplify_module.resolve("polygraphy")


@pytest.mark.parametrize("simplifier", ["onnxsim", "onnxslim"])
def test_a_tunable_model_stays_tunable(cli, tmp_path: Path, simplifier: str) -> None:
    """Simplifiers fold inputs with defaults into constants; the export keeps them inputs."""
    raw = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), raw)
    source = tmp_path / "cnn.anan.onnx"
    assert cli("convert", str(raw), "-o", str(source), "--tunable").returncode == 0
    result = export_model(source, "mobile", tmp_path / "out", simplifier=simplifier)
    exported, original = Session(result.files[0]), Session(source)
    assert exported.parameter_inputs == original.parameter_inputs
    assert len(exported.parameter_inputs) == 5
    x = random_batch(VARIANTS["plain"], 1, seed=4)
    for mu in (1.0, 3.0):  # a changed parameter acts the same in both
        got, want = exported.run(x, anan_mu=mu)[0], original.run(x, anan_mu=mu)[0]
        assert np.abs(got - want).max() <= 1e-6
    assert not np.allclose(exported.run(x, anan_mu=1.0)[0], exported.run(x, anan_mu=3.0)[0])


def test_a_model_with_a_fixed_batch(cli, tmp_path: Path) -> None:
    """A model converted with --batch 3: mobile's default batch 1 is refused with the fix,
    --batch 3 exports it (the graph's shape arithmetic may depend on its batch)."""
    raw = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), raw)
    source = tmp_path / "cnn.anan.onnx"
    assert cli("convert", str(raw), "-o", str(source), "--batch", "3").returncode == 0
    with pytest.raises(AnanError, match="fixed to 3: export with --batch 3"):
        export_model(source, "mobile", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    result = export_model(source, "mobile", tmp_path / "out", batch=3)
    assert result.batch == 3 and result.batch_note == "batch 3 (already fixed)"
    assert all(r.passed and r.images % 3 == 0 for r in result.exactness)
