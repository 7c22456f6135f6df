"""Bounded memory: tune and evaluate read the images a chunk at a time, and the results do
not depend on how the images are chunked (nor on whether they are read lazily)."""

from __future__ import annotations

import numpy as np
import onnx
from fixtures.dataset_files import make_folder, make_npz
from fixtures.evaluation_data import SMALL_GRID, planted, run_cli

from anan_onnx.evaluation.datasets import load_splits
from anan_onnx.evaluation.fastgrid import FastGrid
from anan_onnx.evaluation.lazy_images import LazyImages
from anan_onnx.params import AnanParams
from anan_onnx.runtime.inputs import InputSpec

SPEC = InputSpec("NHWC", 6, 6, 3, scale=1.0)


def test_lazy_splits_read_the_same_pixels_as_eager_ones(tmp_path):
    folder = make_folder(tmp_path / "f", {"a": 7, "b": 5})
    npz = make_npz(tmp_path / "d.npz", hw=(4, 4))
    for source in (folder, npz):
        eager = load_splits(source, SPEC)
        lazy = load_splits(source, SPEC, lazy=True)
        assert eager.info == lazy.info
        for (name, e), (_, z) in zip(eager.items(), lazy.items(), strict=True):
            assert isinstance(z.images, LazyImages) and z.images.shape == e.images.shape, name
            np.testing.assert_array_equal(np.asarray(z.images), e.images)
            np.testing.assert_array_equal(z.images[2:5], e.images[2:5])
            last = len(e.images) - 1
            np.testing.assert_array_equal(z.images[[last, 0]], e.images[[last, 0]])
            np.testing.assert_array_equal(z.images[-1], e.images[-1])


class _Recorder(LazyImages):
    """LazyImages that records how many images each read asks for."""

    reads: list[int]

    def _read(self, index):
        self.reads.append(len(index))
        return super()._read(index)


def test_fast_grid_reads_one_chunk_at_a_time_and_chunking_changes_nothing(tmp_path):
    model, data, _, _ = planted(tmp_path)
    base = onnx.load(model)
    spec = InputSpec("NCHW", 11, 11, 3)
    files = load_splits(data, spec, lazy=True).val.images
    whole = np.asarray(files)
    points = SMALL_GRID.points()
    reference = FastGrid(base, AnanParams(), batch_size=256).predict(whole, points, progress=False)
    recorder = _Recorder(spec, paths=files.paths)
    recorder.reads = []
    streamed = FastGrid(base, AnanParams(), batch_size=5).predict(recorder, points, progress=False)
    assert max(recorder.reads) == 5 and sum(recorder.reads) == len(whole) == 48
    np.testing.assert_array_equal(streamed, reference)  # the same bytes, chunked or not


def test_tune_output_does_not_depend_on_the_batch_size(tmp_path, capsys):
    model, data, _, _ = planted(tmp_path)
    grid = ["--k", "2,3", "--mu", "1,2", "--a", "1.5,4", "--b", "0.3,0.9", "--no-progress"]
    for size in ("3", "256"):
        code, out, _ = run_cli(capsys, "tune", model, data, *grid, "--batch-size", size,
                               "-o", tmp_path / size)  # fmt: skip
        assert code == 0, out
    small, large = (tmp_path / size / "grid.csv" for size in ("3", "256"))
    assert small.read_bytes() == large.read_bytes()
