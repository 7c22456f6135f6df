"""Every ``anan/*`` node is an op that NNAPI and both CoreML formats take in float.

The op lists are read from the files onnxruntime ships for its mobile usability checker
(``onnxruntime/tools/mobile_helpers/*.md``), so the test follows the installed runtime.
"""

from __future__ import annotations

import dataclasses
import pathlib

import onnx
import pytest
from onnx import numpy_helper

from anan_onnx import AnanParams, convert_model
from anan_onnx.testing import VARIANTS, build_cnn

mobile_helpers = pytest.importorskip("onnxruntime.tools.mobile_helpers.usability_checker")

HELPERS = pathlib.Path(mobile_helpers.__file__).parent
LISTS = {
    "NNAPI": "nnapi_supported_ops.md",
    "CoreML NeuralNetwork": "coreml_supported_neuralnetwork_ops.md",
    "CoreML MLProgram": "coreml_supported_mlprogram_ops.md",
}
#: What ran wrong on onnxruntime-web's WebGPU backend or split the mobile partitions.
FORBIDDEN = {"Greater", "Less", "Equal", "Where", "Gather", "Cast", "Sign", "Neg", "Abs"}
#: The only Clip ranges NNAPI takes (as RELU6 and RELU1).
NNAPI_CLIPS = {(0.0, 6.0), (-1.0, 1.0)}

OPTIONS = {
    "default": (AnanParams(), {}),
    "unrolled steps": (AnanParams(), {"fold_steps": False}),
    "tunable": (AnanParams(), {"tunable": True, "k_max": 6}),
    "tunable additive": (AnanParams(rule="additive", idle=1.0), {"tunable": True}),
    "clamp": (AnanParams(counter="clamp"), {}),
    "additive": (AnanParams(rule="additive"), {}),
    "additive idle 1": (AnanParams(rule="additive", idle=1.0), {}),
    "signal post": (AnanParams(signal="post"), {}),
    "post clamp": (AnanParams(signal="post", counter="clamp"), {}),
    "reduce max": (AnanParams(reduce="max"), {}),
    "majority": (AnanParams(reduce="majority", counter="clamp"), {}),
    "fixed batch": (AnanParams(), {"batch": 4}),
    "broadcast": (AnanParams(), {"scaling": "broadcast"}),
}


def _supported(filename: str) -> set[str]:
    """Op types of the ai.onnx domain listed in one of onnxruntime's support tables."""
    ops = set()
    for line in (HELPERS / filename).read_text().splitlines():
        cells = line.split("|")
        if len(cells) == 4 and cells[1].startswith("ai.onnx:"):
            ops.add(cells[1].removeprefix("ai.onnx:").strip())
    return ops


def _anan_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.name.startswith("anan/")]


@pytest.mark.parametrize("pool", [None, "max"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_anan_nodes_use_only_portable_ops(option, pool):
    params, kwargs = OPTIONS[option]
    base = build_cnn(dataclasses.replace(VARIANTS["plain"], out_channels=16), pool=pool, seed=3)
    anan = convert_model(base, params, **kwargs).anan
    nodes = _anan_nodes(anan)
    ops = {n.op_type for n in nodes}
    assert ops and not ops & FORBIDDEN, ops & FORBIDDEN
    for ep, filename in LISTS.items():
        missing = ops - _supported(filename)
        assert not missing, f"{ep} lacks {missing}"
    constants = {i.name: numpy_helper.to_array(i) for i in anan.graph.initializer}
    for node in nodes:
        if node.op_type == "Clip":
            bounds = tuple(float(constants[name]) for name in node.input[1:])
            assert bounds in NNAPI_CLIPS, (node.name, bounds)


def test_the_lists_are_read():
    """The control case: the lists exist and name what the table route used to need."""
    nnapi = _supported(LISTS["NNAPI"])
    assert {"Conv", "Clip", "Relu", "MatMul"} <= nnapi
    assert "Greater" not in nnapi and "Where" not in nnapi
    assert "Gather" not in _supported(LISTS["CoreML MLProgram"])


def _fixed(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy with the batch axis of the input and outputs fixed."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in [*fixed.graph.input, *fixed.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_value = batch
    return fixed


def _partitions(path: pathlib.Path, tmp_path: pathlib.Path) -> tuple[onnx.ModelProto, dict]:
    """onnxruntime's mobile usability checker on ``path``, as its command line runs it
    (optimised to the BASIC level first): the model it checked and, per EP, the
    partitioning info."""
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    optimized = tmp_path / f"{path.stem}.basic.onnx"
    optimize_model(path, optimized)
    model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
    return model, {
        "NNAPI": mobile_helpers.check_nnapi_partitions(model, True),
        **{
            ep: mobile_helpers.check_coreml_partitions(model, True, LISTS[ep])
            for ep in ("CoreML NeuralNetwork", "CoreML MLProgram")
        },
    }


@pytest.mark.parametrize("option", ["default", "unrolled steps", "clamp", "tunable"])
def test_the_mobile_checker_takes_every_anan_node(option, tmp_path):
    """check_onnx_model_mobile_usability's checker on a batch-1 conversion: every anan/*
    node lands in a supported partition for NNAPI and both CoreML formats, and ANAN needs
    no more partitions than its base model."""
    params, kwargs = OPTIONS[option]
    variant = dataclasses.replace(VARIANTS["plain"], out_channels=16)  # the blocked scaling too
    conversion = convert_model(build_cnn(variant, pool="max", seed=5), params, batch=1, **kwargs)
    paths = {"anan": tmp_path / "anan.onnx", "base": tmp_path / "base.onnx"}
    onnx.save(conversion.anan, paths["anan"])
    onnx.save(_fixed(conversion.base, 1), paths["base"])
    checked, anan = _partitions(paths["anan"], tmp_path)
    _, base = _partitions(paths["base"], tmp_path)
    names = [n.name for n in checked.graph.node if n.name.startswith("anan/")]
    assert names
    for ep, info in anan.items():
        supported = {n.name for group in info.supported_groups for n in group}
        assert not [n for n in names if n not in supported], ep
        assert not info.unsupported_ops or info.unsupported_ops == base[ep].unsupported_ops
        assert info.num_partitions == base[ep].num_partitions, ep
        print(  # shown with -s: the figures the README quotes
            f"{option}, {ep}: {info.num_supported_nodes}/{info.num_nodes} nodes "
            f"in {info.num_partitions} partition(s)"
        )


def _inferred(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Each value's shape after onnx shape inference (a dim: its size, or its symbol)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.output]
    return {
        v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param
                 for d in v.type.tensor_type.shape.dim]
        for v in values
    }  # fmt: skip


def _made_by(model: onnx.ModelProto, value: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if value in n.output)


@pytest.mark.parametrize("fold", [None, False], ids=["default", "no-fold-steps"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_anan_values_keep_a_layout_litert_lowers(option, fold):
    """docs/engines.md, LiteRT and 4-D per-kernel values: onnx2tf makes every 4-D value
    NHWC, so no ``anan/`` value is a branch pair on a fourth axis (N, O, 1, 2); the step-1
    ``signal=post`` activity is the map's own mean(relu(C + β)), no arithmetic on constants
    that onnx2tf leaves NCHW; and where the blocked scaling reads a gain that is no column
    (after a MaxPool), the folded pick f·d + v₋ runs on the (N, O, 1) tests."""
    params, kwargs = OPTIONS[option]
    kwargs = {**kwargs, "fold_steps": fold} if fold is False else kwargs
    variant = dataclasses.replace(VARIANTS["plain"], out_channels=16)  # the blocked scaling too
    for pool in (None, "max"):
        anan = convert_model(build_cnn(variant, pool=pool, seed=3), params, **kwargs).anan
        shapes = _inferred(anan)
        pairs = [
            v for v, s in shapes.items() if v.startswith("anan/") and len(s) == 4 and s[-1] == 2
        ]
        assert not pairs, (pool, {v: shapes[v] for v in pairs})
        if params.signal == "post":
            _assert_mean_of_shifted_map(anan, {i.name for i in anan.graph.initializer})
        names = {n.name for n in anan.graph.node}
        picks = [n for n in _anan_nodes(anan) if n.name.endswith("_part")]  # f·d of f·d + v₋
        if "anan/output_scaled/gain_column" in names:  # the blocked scaling reads a (N, O, 1, 1)
            assert all(len(shapes[n.input[0]]) == 3 for n in picks), [n.input[0] for n in picks]
        if pool and fold is None and option in ("signal post", "reduce max"):  # such a case
            assert picks and "anan/output_scaled/gain_column" in names, names


def _assert_mean_of_shifted_map(anan: onnx.ModelProto, constants: set[str]) -> None:
    """``anan/step1/activity`` = GlobalAveragePool(Relu(Add(map, bias)))."""
    mean = _made_by(anan, "anan/step1/activity")
    relu = _made_by(anan, mean.input[0])
    add = _made_by(anan, relu.input[0])
    assert [mean.op_type, relu.op_type, add.op_type] == ["GlobalAveragePool", "Relu", "Add"]
    assert add.input[0] not in constants and add.input[1] in constants
    assert _made_by(anan, add.input[0]).op_type == "Conv"
