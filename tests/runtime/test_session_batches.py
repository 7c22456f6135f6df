"""Session.predict in chunks: fixed-batch models take any number of images, and the chunk
size never changes a result (issue 15 item 2: a ``--batch 1`` model failed on 2 images)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from PIL import Image

from anan_onnx.convert.pipeline import convert_model, load_base
from anan_onnx.params import AnanParams
from anan_onnx.reference.literal import LiteralReference
from anan_onnx.reference.verify import verify_models
from anan_onnx.runtime.session import Session, default_batch_size
from anan_onnx.testing import VARIANTS, build_cnn

PARAMS = AnanParams(k=4, mu=2, a=1.3, b=0.4)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("batches")
    onnx.save(build_cnn(VARIANTS["plain"], head="softmax", seed=3), root / "cnn.onnx")
    base = load_base(root / "cnn.onnx")
    dynamic = convert_model(base, PARAMS)
    fixed = {n: convert_model(base, PARAMS, batch=n).anan for n in (1, 3)}
    return root, dynamic, fixed


def _images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3, 11, 11)) / 255).astype(np.float32)


@pytest.mark.parametrize("fixed_n", [1, 3])
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_fixed_batch_models_take_any_number_of_images(models, fixed_n, n):
    _, dynamic, fixed = models
    x = _images(n)
    session = Session(fixed[fixed_n])
    assert session.fixed_batch == fixed_n
    got = session.predict(x)
    # the independent literal loop, and the base model (the modulation must show)
    ref = LiteralReference(dynamic.base, dynamic.target_layer, PARAMS).run(x)
    keep = ~ref.near_tie
    assert got.shape == ref.outputs[0].shape and keep.any()
    np.testing.assert_allclose(got[keep], ref.outputs[0][keep], atol=1e-5)
    base = Session(dynamic.base).predict(x)
    assert np.abs(got - base).max() > 1e-4
    # the fixed-batch graph takes another final-layer route: equal up to float rounding
    np.testing.assert_allclose(got, Session(dynamic.anan).predict(x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_chunk_size_does_not_change_results(models, batch_size):
    _, dynamic, _ = models
    session = Session(dynamic.anan)
    x = _images(11, seed=1)
    np.testing.assert_array_equal(session.predict(x, batch_size=batch_size), session.predict(x))


def test_predict_images_streams_and_handles_a_fixed_batch(models, tmp_path):
    _, dynamic, fixed = models
    paths = []
    for i, pixels in enumerate(np.random.default_rng(2).integers(0, 256, (5, 11, 11, 3))):
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    expected = Session(dynamic.anan).predict_images(paths)
    for model in fixed.values():
        got = Session(model).predict_images(paths, batch_size=2)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_verify_more_images_than_the_fixed_batch(models):
    _, dynamic, fixed = models
    report = verify_models(fixed[1], dynamic.base, n=16)  # verify's default n
    assert report.passed and report.images == 16, report.summary()


def test_default_batch_size_is_bounded_by_memory():
    small = default_batch_size((None, 3, 32, 32))
    large = default_batch_size((None, 3, 1024, 1024))
    assert 1 <= large < small <= 256
    assert default_batch_size((1, 3, 1024, 1024), fixed=1) == 1
    # one batch of the default size stays within the 512 MiB budget (16x the input)
    assert large * 3 * 1024 * 1024 * 4 * 16 <= 512 * 2**20
