"""Every model the converter writes loads on strict engines: consistent shape hints after a
rename or a batch fix, and no Conv whose weights are computed (docs/engines.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from anan_onnx import AnanParams, LiteralReference, convert_model, load_base
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

PARAMS = AnanParams()


def _pytorch_style(path: Path) -> Path:
    """The generated CNN as torch.onnx.export writes it with dynamic_axes: the batch axis
    named ``batch_size`` in the inputs, outputs *and* every intermediate shape hint."""
    model = build_cnn(VARIANTS["plain"], seed=3)
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch_size"
    model = onnx.shape_inference.infer_shapes(model)
    assert any(
        d.dim_param == "batch_size" for v in model.graph.value_info
        for d in v.type.tensor_type.shape.dim
    )  # fmt: skip
    onnx.save(model, path)
    return path


def _symbols(values) -> set[str]:
    return {d.dim_param for v in values for d in v.type.tensor_type.shape.dim if d.dim_param}


@pytest.mark.parametrize("batch", [None, 1, 3])
def test_shape_hints_follow_the_renamed_or_fixed_batch(tmp_path: Path, batch: int | None) -> None:
    """No hint names a batch symbol the inputs no longer have, and tract (which refuses to
    unify such hints) runs both written models exactly."""
    import tract

    base = load_base(_pytorch_style(tmp_path / "pt.onnx"))
    conversion = convert_model(base, PARAMS, batch=batch)
    x = random_batch(VARIANTS["plain"], batch or 2, seed=4)
    reference = LiteralReference(conversion.base, conversion.target_layer, PARAMS).run(x)
    expected = np.asarray(reference.outputs[0], np.float64)
    for name, model in (("base", conversion.base), ("anan", conversion.anan)):
        graph = model.graph
        stale = _symbols(graph.value_info) - _symbols([*graph.input, *graph.output])
        assert not {s for s in stale if not s.startswith("unk__")}, (name, stale)
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, path)
        runnable = tract.onnx().load(str(path)).into_model().into_runnable()
        out = runnable.run([x])[0].to_numpy()
        if name == "anan":
            assert np.abs(out - expected).max() <= 1e-5
    assert np.abs(expected - _run_ort(conversion.base, x)).max() > 1e-4  # the astrocytes act


def _run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0], np.float64)


@pytest.mark.parametrize("variant", ["plain", "depthwise", "stride2"])
def test_fixed_batch_keeps_constant_conv_weights(variant: str) -> None:
    """With --batch N and no pool after the target, every Conv's weights are constants
    (onnx2tf lowers a Conv with computed weights to a custom op LiteRT cannot run) and the
    outputs equal the literal loop's."""
    conv_variant = VARIANTS[variant]
    base = build_cnn(conv_variant, seed=3)
    conversion = convert_model(base, PARAMS, batch=3)
    graph = conversion.anan.graph
    constants = {i.name for i in graph.initializer}
    constants |= {n.output[0] for n in graph.node if n.op_type == "Constant"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(n.input[1] in constants for n in convs)
    x = random_batch(conv_variant, 3, seed=4)
    reference = LiteralReference(conversion.base, conversion.target_layer, PARAMS).run(x)
    expected = np.asarray(reference.outputs[0], np.float64)
    out = _run_ort(conversion.anan, x)
    assert np.abs(out - expected).max() <= 1e-5
    assert np.abs(expected - _run_ort(conversion.base, x)).max() > 1e-4
