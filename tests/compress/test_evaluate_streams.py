"""``evaluate`` of a compressed model reads only the test split, a batch at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

from anan_onnx.evaluation import compressed
from anan_onnx.evaluation.lazy_images import LazyImages
from anan_onnx.options import RunOptions, SplitOptions


def test_only_the_test_split_is_read_in_batches(small: Path, fp16_model, tmp_path, monkeypatch):
    labelled = tmp_path / "labelled"
    for i, image in enumerate(sorted((small.parent / "data").glob("*.png"))):
        folder = labelled / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / image.name)
    split, run = SplitOptions(), RunOptions(progress=False)
    eager = compressed.evaluate_compressed(fp16_model.output, labelled, None, split, run)
    reads: list[int] = []
    real = LazyImages._read

    def counted(self, rows):
        reads.append(len(rows))
        return real(self, rows)

    monkeypatch.setattr(LazyImages, "_read", counted)
    monkeypatch.setattr(compressed, "BATCH", 2)
    streamed = compressed.evaluate_compressed(fp16_model.output, labelled, None, split, run)
    assert streamed == eager  # the same scores, whatever the batch
    assert sum(reads) == streamed["n_test"] < 24  # the test split only, train never read
    assert max(reads) == 2 and len(reads) >= 2
