"""The model's own leading scaling, read from the graph (anan_onnx.runtime.own_scaling)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from fixtures.own_scaling import MEAN01, STD01, with_chain
from onnx import helper, numpy_helper

from anan_onnx.runtime.own_scaling import own_scaling
from anan_onnx.testing import VARIANTS, build_cnn


def _channel(values) -> np.ndarray:
    return np.asarray(values, np.float64).reshape(1, 3, 1, 1)


@pytest.mark.parametrize(
    ("steps", "pixel_scale"),
    [
        ([("Div", np.float64(255), False)], 1.0),  # x / 255: the model takes raw pixels
        ([("Mul", 1 / 127.5, False), ("Add", -1.0, False)], 1.0),  # Keras Rescaling 'tf'
        ([("Sub", _channel(MEAN01 * 255), False), ("Div", _channel(STD01 * 255), False)], 1.0),
        ([("Sub", _channel(MEAN01), False), ("Div", _channel(STD01), False)], 1 / 255),
        ([("Sub", _channel([103.939, 116.779, 123.68]), False)], 1.0),  # Caffe: mean only
        ([("Mul", 1000.0, False)], None),  # no pixel range becomes a normalised one
    ],
    ids=["div255", "tf", "torch_pixels", "torch_fractions", "caffe", "unclear"],
)
def test_the_pixel_range_a_chain_was_built_for(steps, pixel_scale):
    own = own_scaling(with_chain(steps), "NCHW", 3)
    assert own is not None and len(own.ops) == len(steps)
    assert own.pixel_scale() == pixel_scale


def test_the_chain_is_composed_per_channel():
    mean, std = _channel(MEAN01), _channel(STD01)
    steps = [("Sub", mean, False), ("Div", std, False), ("Sub", np.float64(1), True)]  # 1 - x
    own = own_scaling(with_chain(steps), "NCHW", 3)
    x = np.random.default_rng(0).uniform(0, 1, (4, 3))
    expected = 1 - (x - MEAN01) / STD01
    np.testing.assert_allclose(x * own.scale + own.offset, expected, rtol=1e-6)
    assert own.ops[0] == "Sub (0.485, 0.456, 0.406)"


@pytest.mark.parametrize(
    "steps",
    [
        [("Div", np.float64(2), True)],  # 2 / x is not affine
        [("Mul", np.ones((1, 3, 11, 11)), False)],  # not one value per channel
        [("Sub", np.ones((3,)), False)],  # broadcast over the width, not the channels (NCHW)
    ],
    ids=["reciprocal", "per_pixel", "wrong_axis"],
)
def test_what_is_not_a_per_channel_affine_map_is_no_chain(steps):
    assert own_scaling(with_chain(steps), "NCHW", 3) is None


def test_an_input_used_twice_is_no_chain():
    model = with_chain([("Mul", 1 / 255, False)])
    model.graph.node.append(helper.make_node("Identity", ["pixels"], ["raw"]))
    model.graph.output.append(helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT, None))
    assert own_scaling(model, "NCHW", 3) is None
    assert own_scaling(build_cnn(VARIANTS["plain"]), "NCHW", 3) is None  # starts with a Conv


def test_a_recorded_preprocessing_that_scales_twice_is_named():
    own = own_scaling(with_chain([("Mul", 1 / 127.5, False), ("Add", -1.0, False)]), "NCHW", 3)
    assert own.contradiction(1.0, 0.0) is None
    message = own.contradiction(1 / 255, 0.0)
    assert "scaled twice" in message and "--preprocess raw" in message
    assert "Mul 0.00784314, Add -1" in message
    fractions = own_scaling(
        with_chain([("Sub", _channel(MEAN01), False), ("Div", _channel(STD01), False)]), "NCHW", 3
    )
    assert fractions.contradiction(1 / 255, 0.0) is None
    assert "--preprocess unit" in fractions.contradiction(1.0, 0.0)


def test_a_layout_transpose_is_looked_through():
    """tf2onnx may put the NHWC -> NCHW Transpose before the scaling: the chain goes on,
    its constants read in the layout after the Transpose."""
    model = with_chain([("Sub", _channel(MEAN01 * 255), False), ("Div", 255.0, False)])
    graph = model.graph
    graph.input[0].name = "nhwc"
    graph.input[0].type.tensor_type.shape.dim[1].dim_value = 11
    graph.input[0].type.tensor_type.shape.dim[3].dim_value = 3
    turn = helper.make_node("Transpose", ["nhwc"], ["pixels"], perm=[0, 3, 1, 2])
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend([turn, *rest])
    own = own_scaling(model, "NHWC", 3)
    assert own is not None and own.ops == ("Sub (123.675, 116.28, 103.53)", "Div 255")
    np.testing.assert_allclose(own.offset, -MEAN01)
    assert own_scaling(model, "NCHW", 3) is None  # (0, 3, 1, 2) does not turn NCHW


@pytest.mark.parametrize("from_file", [False, True], ids=["proto", "file"])
def test_session_of_a_raw_model_reads_its_own_scaling_as_convert_does(tmp_path, from_file):
    """``predict`` on a raw ONNX model that divides by 255 itself must feed raw pixels,
    the reading convert makes (``resolve``), not scale them a second time."""
    import warnings

    from anan_onnx.convert.preprocessing import PreprocessRequest, resolve
    from anan_onnx.runtime.session import Session

    model = with_chain([("Mul", np.float64(1 / 255), False)])
    source = model
    if from_file:
        source = tmp_path / "raw.onnx"
        onnx.save(model, source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = Session(source).input_spec()
    assert spec is not None and spec.scale == 1.0 and spec.offset == 0.0
    assert float(resolve(model, PreprocessRequest()).values["scale"]) == spec.scale
    message = str(caught[-1].message)
    assert "x = pixel * 1 + 0" in message
    assert "read from its own scaling (Mul 0.00392157)" in message
    # A graph without a scaling chain keeps the 1/255 assumption, and says so.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = Session(build_cnn(VARIANTS["plain"])).input_spec()
    assert plain is not None and plain.scale == pytest.approx(1 / 255)
    assert "1/255 assumed" in str(caught[-1].message)


def test_reading_the_chain_converts_only_its_constants(monkeypatch):
    """The chain's constants are looked up by name: the weights are never copied."""
    model = with_chain([("Mul", np.float64(1 / 255), False)])
    converted: list[str] = []
    to_array = numpy_helper.to_array

    def counted(tensor, *args, **kwargs):
        converted.append(tensor.name)
        return to_array(tensor, *args, **kwargs)

    monkeypatch.setattr(numpy_helper, "to_array", counted)
    own = own_scaling(model, "NCHW", 3)
    assert own is not None and own.pixel_scale() == 1.0
    assert converted == ["c0"]  # not the Conv's weights and bias
