"""compress: the astrocytes stay FP32, the tail is compressed, verify holds it exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from anan_onnx.compress import compress_file
from anan_onnx.compress.exclusions import anan_front
from anan_onnx.metadata import read_metadata
from anan_onnx.reference.compressed import verify_compressed_models
from anan_onnx.reference.verify import verify_models
from anan_onnx.runtime.session import Session

QDQ = {"QuantizeLinear", "DequantizeLinear"}


def _qdq_touching_front(model: onnx.ModelProto) -> list[str]:
    """Q/DQ nodes that feed an ``anan/*`` node or its upstream, or read one's weights."""
    front = anan_front(model)
    front_inputs = {t for n in model.graph.node if n.name in front for t in n.input}
    return [n.name for n in model.graph.node if n.op_type in QDQ and (set(n.output) & front_inputs)]


def _inputs(model: Path, n: int = 24, seed: int = 5) -> np.ndarray:
    session = Session(model)
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, *session.input_shape[1:])) / 255).astype(np.float32)


def test_int8_keeps_astrocytes_and_target_conv_fp32(int8_model) -> None:
    ops = [n.op_type for n in int8_model.anan.graph.node]
    assert ops.count("QuantizeLinear") >= 3  # the tail is quantized
    assert _qdq_touching_front(int8_model.anan) == []
    conv = next(n for n in int8_model.anan.graph.node if n.name == "anan/conv")
    weights = {i.name: i for i in int8_model.anan.graph.initializer}
    assert weights[conv.input[1]].data_type == onnx.TensorProto.FLOAT


def test_include_astrocytes_quantizes_them(small: Path, tmp_path: Path) -> None:
    out = compress_file(
        small,
        "int8",
        output=tmp_path / "all.int8.anan.onnx",
        calibration=[small.parent / "data"],
        calibration_size=16,
        include_astrocytes=True,
    )
    assert _qdq_touching_front(out.anan) != []
    assert read_metadata(out.anan)["astrocytes"] == "compressed"
    # the deliberately compressed activity and conv no longer match the literal loop
    report = verify_compressed_models(out.anan, out.base, _inputs(small))
    assert not report.passed and report.handover_diff > 1e-3


@pytest.mark.parametrize("which", ["int8_model", "fp16_model"])
def test_verify_exact_against_compressed_base(which: str, request, small: Path) -> None:
    result = request.getfixturevalue(which)
    x = _inputs(small)
    report = verify_compressed_models(result.anan, result.base, x)
    assert report.passed, report.summary()
    assert report.handover_diff <= 1e-5 and report.outputs.compared >= 20
    # the astrocytes act: the compressed ANAN model is not its compressed base
    ours = Session(result.output).predict(x)
    base = Session(result.base_output).predict(x)
    assert np.abs(ours - base).max() > 1e-3


def test_verify_refuses_fp32_base_for_compressed_model(int8_model, small: Path) -> None:
    from anan_onnx.errors import AnanError

    with pytest.raises(AnanError, match="base written with it"):
        verify_models(int8_model.output, small.with_name("cnn.base.onnx"), n=2)


def test_metadata_records_compression(int8_model, small: Path) -> None:
    meta = read_metadata(int8_model.anan)
    assert meta["compression"] == "int8-qdq-per-channel"
    assert meta["calibration_size"] == "16" and meta["calibration_seed"] == "0"
    assert len(meta["calibration_sha256"]) == 64
    assert meta["excluded_nodes"] == str(len(anan_front(onnx.load(str(small)))))
    assert meta["fp32_model"] == small.name and meta["astrocytes"] == "fp32"
    assert meta["base_model"] == int8_model.base_output.name
    assert meta["k"] == "4" and meta["a"] == "1.5"  # the ANAN parameters survive
    assert read_metadata(int8_model.base)["compression"] == meta["compression"]


def test_calibration_draw_is_seeded(small: Path, tmp_path: Path, int8_model) -> None:
    again = compress_file(
        small, "int8", output=tmp_path / "a.anan.onnx",
        calibration=[small.parent / "data"], calibration_size=16,
    )  # fmt: skip
    other = compress_file(
        small, "int8", output=tmp_path / "b.anan.onnx",
        calibration=[small.parent / "data"], calibration_size=16, seed=1,
    )  # fmt: skip
    sha = read_metadata(int8_model.anan)["calibration_sha256"]
    assert read_metadata(again.anan)["calibration_sha256"] == sha
    assert read_metadata(other.anan)["calibration_sha256"] != sha


def test_fp16_keeps_float32_io_and_fp32_front(fp16_model) -> None:
    graph = fp16_model.anan.graph
    f32 = onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in graph.input] == [f32]
    assert {o.type.tensor_type.elem_type for o in graph.output} == {f32}
    front = anan_front(fp16_model.anan)
    front_inputs = {t for n in graph.node if n.name in front for t in n.input}
    types = {i.name: i.data_type for i in graph.initializer}
    assert {types[t] for t in front_inputs if t in types} <= {f32, onnx.TensorProto.INT64}
    assert onnx.TensorProto.FLOAT16 in set(types.values())  # the tail is float16


def test_sizes_shrink(small: Path, int8_model, fp16_model) -> None:
    fp32 = small.stat().st_size
    assert int8_model.output.stat().st_size < 0.5 * fp32
    assert fp16_model.output.stat().st_size < 0.6 * fp32


@pytest.mark.parametrize("options", [{"tunable": True}, {"fold_steps": True}])
def test_fp16_of_other_graph_forms(options: dict, small: Path, tmp_path: Path) -> None:
    """A --tunable model keeps its parameter inputs (unused ones too); --fold-steps works."""
    from compress_helpers import PARAMS

    from anan_onnx.convert.pipeline import convert_file

    convert_file(small.with_name("cnn.onnx"), tmp_path / "m.anan.onnx", PARAMS, layout="NHWC",
                 **options)  # fmt: skip
    result = compress_file(tmp_path / "m.anan.onnx", "fp16")
    report = verify_compressed_models(result.anan, result.base, _inputs(small, 12))
    assert report.passed, report.summary()


def test_verify_refuses_a_base_missing_any_handover_tensor(fp16_model, small: Path) -> None:
    """Every hand-over tensor must be in the base: one missing would go unchecked."""
    from onnx import helper

    from anan_onnx.errors import AnanError
    from anan_onnx.reference.compressed import handover_tensors

    anan = onnx.ModelProto.FromString(fp16_model.anan.SerializeToString())
    first = handover_tensors(anan)[0]
    # a second hand-over: an anan/ node's output read outside the subgraph, not in the base
    anan.graph.node.extend([
        helper.make_node("Identity", [first], ["anan/extra_out"], name="anan/extra"),
        helper.make_node("Identity", ["anan/extra_out"], ["extra_read"], name="extra_reader"),
    ])  # fmt: skip
    assert handover_tensors(anan) == sorted([first, "anan/extra_out"])
    with pytest.raises(AnanError, match=r"does not produce the tensors .*\(anan/extra_out\)"):
        verify_compressed_models(anan, fp16_model.base, _inputs(small, 4))
