"""The modulated stage image by image (``scaling='scan'``, ``routes.batch_scan``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from anan_onnx import AnanParams, convert_model, read_metadata
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

from equivalence import assert_matches_reference, run_onnx, triggered

WIDE = dataclasses.replace(VARIANTS["plain"], out_channels=16)  # whole NCHWc blocks
PARAMS = AnanParams(k=4, mu=2, a=1.5, b=0.3)


def _scan(model: onnx.ModelProto) -> onnx.NodeProto:
    (scan,) = [n for n in model.graph.node if n.op_type == "Scan"]
    return scan


def _w0(base: onnx.ModelProto) -> np.ndarray:
    return next(numpy_helper.to_array(i) for i in base.graph.initializer if i.name == "W")


@pytest.mark.parametrize(
    ("variant", "pool", "activation", "params"),
    [
        (WIDE, "max", "Relu", PARAMS),  # pool route, blocked scaling in the body
        (WIDE, "max_no_act", "Relu", PARAMS),
        (WIDE, None, "Relu", PARAMS),  # no pool: broadcast scaling and the activation
        (VARIANTS["plain"], "max", "Tanh", PARAMS),  # 6 channels: broadcast after the pool
        (WIDE, None, "Sigmoid", dataclasses.replace(PARAMS, rule="additive", signal="post")),
        (VARIANTS["stride2"], None, "Relu", dataclasses.replace(PARAMS, reduce="max")),
        (VARIANTS["no_bias"], "max", "Relu", dataclasses.replace(PARAMS, counter="clamp")),
    ],
    ids=["pool", "pool_no_act", "no_pool", "narrow_pool", "additive_post", "stride2", "no_bias"],
)
@pytest.mark.parametrize("batch", [None, 5], ids=["dynamic", "fixed"])
def test_scan_route_matches_the_reference(variant, pool, activation, params, batch):
    base = build_cnn(variant, activation=activation, pool=pool, seed=3)
    x = random_batch(variant, 5)
    ours, ref = assert_matches_reference(base, params, x, batch=batch, scaling="scan")
    assert triggered(ref, _w0(base)), "no astrocyte fired: the case checks nothing"
    assert not np.allclose(ours, run_onnx(base, x), rtol=1e-4, atol=1e-5)
    anan = convert_model(base, params, batch=batch, scaling="scan").anan
    # the layer's input is scanned, or its maps where the activities read them too
    own_conv = params.signal == "pre" and params.reduce == "mean"
    inputs = list(_scan(anan).input)
    assert ("x" in inputs) == own_conv
    assert own_conv or any(name.startswith("anan/conv") for name in inputs)
    assert read_metadata(anan)["scaling"] == "scan"


@pytest.mark.parametrize("pool", ["max", None])
@pytest.mark.parametrize("n", [1, 7])
def test_the_layer_output_is_bit_identical_to_the_batched_stage(pool, n):
    """The modulated layer's own output (made a graph output); the layers after it may
    round differently in or out of the blocked layout, the layer itself does not."""
    base = build_cnn(WIDE, pool=pool, seed=4)
    side = 5 if pool else 11
    base.graph.output.append(
        onnx.helper.make_tensor_value_info("act_out", 1, ["N", 16, side, side])
    )
    x = random_batch(WIDE, n, seed=2)
    outputs = []
    for scaling in ("blocked", "scan"):
        anan = convert_model(base, PARAMS, scaling=scaling).anan
        session = ort.InferenceSession(anan.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {"x": x}))
    assert np.array_equal(outputs[0][1], outputs[1][1])
    assert np.allclose(outputs[0][0], outputs[1][0], rtol=1e-5, atol=1e-6)


def test_the_body_owns_its_constants_and_the_outer_graph_drops_them():
    """onnxruntime blocks a body's Conv only when its weights are the body's initializers;
    the outer graph keeps no copy the Scan made unused."""
    anan = convert_model(build_cnn(WIDE, pool="max", seed=5), PARAMS, scaling="scan").anan
    body = onnx.helper.get_attribute_value(_scan(anan).attribute[0])
    conv = next(n for n in body.node if n.op_type == "Conv")
    assert conv.input[1] in {i.name for i in body.initializer}
    outer = {i.name for i in anan.graph.initializer}
    used = {name for node in anan.graph.node for name in node.input}
    assert outer <= used, f"unused initializers: {outer - used}"
    onnx.checker.check_model(anan, full_check=True)
    options = ort.SessionOptions()
    options.log_severity_level = 0  # the "Removing initializer" warning would show here
    ort.InferenceSession(anan.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("pool", ["max", None])
def test_onnx_reference_runs_the_scan_alike(pool):
    """The Scan is standard ONNX: onnx's reference evaluator gives onnxruntime's outputs."""
    from onnx.reference import ReferenceEvaluator

    anan = convert_model(build_cnn(WIDE, pool=pool, seed=6), PARAMS, scaling="scan").anan
    x = random_batch(WIDE, 3, seed=4)
    (reference,) = ReferenceEvaluator(anan).run(None, {"x": x})
    assert np.allclose(reference, run_onnx(anan, x), rtol=1e-5, atol=1e-6)


def test_every_modulated_layer_gets_its_own_scan():
    from anan_onnx.testing import build_base_cnn

    base = build_base_cnn(16, 3, (16, 16), 4, seed=2)
    x = np.random.default_rng(3).random((2, 16, 16, 3), dtype=np.float32)
    ours, _ = assert_matches_reference(base, PARAMS, x, layers="all", scaling="scan")
    anan = convert_model(base, PARAMS, layers="all", scaling="scan").anan
    assert sum(n.op_type == "Scan" for n in anan.graph.node) == 2
    assert not np.allclose(ours, run_onnx(base, x), rtol=1e-4, atol=1e-6)


def test_scan_applies_a_pooled_gain_in_the_blocked_layout_as_a_column():
    """After a MaxPool with whole NCHWc blocks the scanned stage uses the blocked scaling, as
    ``--scaling blocked`` does, with the step-1 means as a column (no Reshape to one)."""
    anan = convert_model(build_cnn(WIDE, pool="max", seed=3), PARAMS, scaling="scan").anan
    body = onnx.helper.get_attribute_value(
        next(a for a in _scan(anan).attribute if a.name == "body")
    )
    names = {n.name for n in body.node} | {n.name for n in anan.graph.node}
    assert "anan/output_scaled/gain_blocked" in names
    assert "anan/output_scaled/gain_column" not in names
