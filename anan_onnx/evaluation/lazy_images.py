"""A data set's images read on demand, a slice at a time, so memory does not grow with them.

``tune`` and ``evaluate`` pass over the validation and test images a few times (the base
CNN, each option set of the grid, each ANAN variant). Holding them all as float32 costs
``n·H·W·C·4`` bytes (2,880 images of 128x128x3: 570 MB, and more in temporaries); a
:class:`LazyImages` holds only where each image is (a file path, or the row of a uint8 array
already in memory) and decodes the rows asked for, with the same preprocessing as
:func:`anan_onnx.runtime.image_files.load_images`. It behaves like the float32 batch for what
the evaluation code does with it: ``len``, ``shape``, slicing, ``np.asarray``.

It is a plain picklable object (paths, or a uint8 array, and the spec), so a distributed
engine can send a slice of it to a worker, which reads its own images.

Example:
    >>> images = LazyImages.files(["a.png"], InputSpec("NHWC", 32, 32, 3))  # doctest: +SKIP
    >>> images[0:1].shape  # doctest: +SKIP
    (1, 32, 32, 3)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from anan_onnx.runtime.inputs import InputSpec

__all__ = ["LazyImages", "iter_batches"]


class LazyImages:
    """Images of one split, decoded when sliced.

    Build with :meth:`files` (image files) or :meth:`pixels` (uint8 arrays, e.g. an
    ``.npz`` split); slicing returns float32 in the spec's layout.
    """

    def __init__(
        self,
        spec: InputSpec,
        paths: Sequence[str] | None = None,
        pixels: np.ndarray | None = None,
    ) -> None:
        if (paths is None) == (pixels is None):
            raise ValueError("give paths or pixels, not both")
        self.spec = spec
        self.paths = list(paths) if paths is not None else None
        self.pixel_rows = pixels

    @classmethod
    def files(cls, paths: Sequence[str], spec: InputSpec, *, check: bool = True) -> LazyImages:
        """Image files, read and preprocessed as ``load_images`` does when sliced.

        With ``check`` (default) every file's header is opened now, so a missing file or
        one that is not an image is refused before any work, as an eager load would; a
        file whose pixel data is corrupt is refused when it is read.
        """
        from anan_onnx.runtime.image_files import check_image_file

        names = [str(p) for p in paths]
        if check:
            for name in names:
                check_image_file(name)
        return cls(spec, paths=names)

    @classmethod
    def pixels(cls, rows: np.ndarray, spec: InputSpec) -> LazyImages:
        """uint8 rows (n, H, W) or (n, H, W, 1|3), converted and resized per slice."""
        return cls(spec, pixels=rows)

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self._pixels())

    def _pixels(self) -> np.ndarray:
        assert self.pixel_rows is not None
        return self.pixel_rows

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.batch_shape(len(self))

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def subset(self, start: int, stop: int) -> LazyImages:
        """The images ``start:stop``, still unread (cheap: for sharding)."""
        if self.paths is not None:
            return LazyImages(self.spec, paths=self.paths[start:stop])
        return LazyImages(self.spec, pixels=self._pixels()[start:stop])

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._read(range(start, stop))
            return self._read(range(start, stop, step))
        if isinstance(key, (int, np.integer)):
            return self._read([int(key) % len(self)])[0]
        return self._read(np.asarray(key, dtype=np.int64).reshape(-1).tolist())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._read(range(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def _read(self, index: Sequence[int] | range) -> np.ndarray:
        # Pillow only when images are read (an .npz data set needs none)
        from anan_onnx.evaluation.npz_source import convert_pixels
        from anan_onnx.runtime.image_files import load_images

        if self.paths is not None:
            batch, _, _ = load_images([self.paths[i] for i in index], self.spec, progress=False)
            return batch
        return convert_pixels(self._pixels()[np.asarray(list(index), np.int64)], self.spec)


def iter_batches(images: np.ndarray | LazyImages, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, batch)`` over an array or :class:`LazyImages`, ``size`` images at a time."""
    for start in range(0, len(images), size):
        yield start, np.asarray(images[start : start + size])
