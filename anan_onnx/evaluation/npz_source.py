"""MedMNIST-style ``.npz`` archives as a data set source.

Example:
    >>> source = NpzSource(Path("data/pneumoniamnist.npz"))  # doctest: +SKIP
    >>> source.classes, {s: len(lst.refs) for s, lst in source.listings.items()}  # doctest: +SKIP
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.splitting import SPLITS, Listing
from anan_onnx.files import open_regular
from anan_onnx.limits import NPZ_BYTES
from anan_onnx.runtime.image_files import pixels_from_pil, progress_bar, to_model_input
from anan_onnx.runtime.inputs import InputSpec

__all__ = ["NpzSource"]


class NpzSource:
    """A MedMNIST-style archive: ``{train,val,test}_{images,labels}`` (+ optional ``classes``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            check_npz_sizes(path)
            archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise AnanError(
                f"{path} is not a readable .npz archive ({e}): save it with numpy.savez"
            ) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise AnanError(
                f"{path} is a .npy array, not an .npz archive: save it with numpy.savez"
            )
        with archive:
            self.arrays = {k: self._read(archive, k) for k in archive.files}
        self.listings = self._labels()
        self.classes = self._classes()

    def _read(self, archive: Any, key: str) -> np.ndarray:
        try:
            return archive[key]
        except ValueError:  # object arrays need pickle: refused
            raise AnanError(
                f"{self.path}: array {key} holds Python objects, refused for safety: store "
                "numeric arrays"
            ) from None

    def _labels(self) -> dict[str, Listing]:
        keys = set(self.arrays)
        listings: dict[str, Listing] = {}
        for s in SPLITS:
            has_x, has_y = f"{s}_images" in keys, f"{s}_labels" in keys
            if has_x != has_y:
                have, lack = (f"{s}_images", f"{s}_labels")[:: 1 if has_x else -1]
                raise AnanError(f"{self.path} has {have} but no {lack}: store both")
            if has_x:
                listings[s] = self._split_labels(s)
        if "test" not in listings or not ({"train", "val"} & set(listings)):
            raise AnanError(
                f"{self.path} lacks keys (has {', '.join(sorted(keys)) or 'none'}): a "
                "MedMNIST-style .npz needs test_images, test_labels and train_* or val_*"
            )
        return listings

    def _split_labels(self, s: str) -> Listing:
        x, y = self.arrays[f"{s}_images"], self.arrays[f"{s}_labels"]
        if (
            x.dtype != np.uint8
            or x.ndim not in (3, 4)
            or (x.ndim == 4 and x.shape[3] not in (1, 3))
        ):
            raise AnanError(
                f"{self.path}: {s}_images is {x.dtype} {x.shape}; expected uint8 pixels shaped "
                "(n, H, W) or (n, H, W, 1|3): store 0-255 pixels as uint8"
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise AnanError(
                f"{self.path}: {s}_labels has shape {y.shape} (multi-label?): store one class "
                "index per image, shape (n,) or (n, 1)"
            )
        if len(y) != len(x):
            raise AnanError(
                f"{self.path}: {s}_labels has {len(y)} labels but {s}_images has {len(x)} "
                "images: store one label per image"
            )
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iu":
            raise AnanError(
                f"{self.path}: {s}_labels are {y.dtype}, not class indices: store integers"
            )
        if len(y) and y.min() < 0:
            raise AnanError(
                f"{self.path}: {s}_labels has label {int(y.min())}, outside the class range: "
                "labels must be 0, 1, ..."
            )
        y = y.astype(np.int64)
        return Listing(list(range(len(y))), y, y)

    def _classes(self) -> list[str]:
        top = max(int(lst.labels.max()) for lst in self.listings.values() if len(lst.labels))
        if "classes" not in self.arrays:
            return [str(i) for i in range(top + 1)]
        names = [str(c) for c in self.arrays["classes"].ravel()]
        if top >= len(names):
            raise AnanError(
                f"{self.path}: a label is {top}, outside the {len(names)} names in 'classes': "
                "fix the labels or the class names"
            )
        return names

    def images(
        self, store: str, index: Sequence[int], spec: InputSpec, progress: bool | None
    ) -> np.ndarray:
        """The chosen images of a stored split, converted and resized like image files."""
        x = self.arrays[f"{store}_images"][np.asarray(index, dtype=np.int64)]
        return convert_pixels(x, spec, progress, f"resizing {store}")


def check_npz_sizes(path: Path) -> int:
    """Refuses an ``.npz`` whose members would expand beyond
    :data:`anan_onnx.limits.NPZ_BYTES`, or whose ``.npy`` headers declare more data than
    their member holds; read from the zip directory and the headers, before any array.

    A 6.9 MB archive expanding to 7 GB ended in an allocation traceback; numpy allocates
    an array of the declared shape before reading a member. Returns the expanded size.
    """
    with open_regular(path, "data set") as f, zipfile.ZipFile(f) as archive:
        members = archive.infolist()
        total = sum(m.file_size for m in members)
        NPZ_BYTES.check(total, f"{path} (expanded)")
        for member in members:
            if member.filename.endswith(".npy"):
                with archive.open(member) as stream:
                    declared, header = _npy_data_bytes(stream)
                if declared + header > member.file_size:
                    raise AnanError(
                        f"{path}: {member.filename} declares {declared:,} bytes of data but "
                        f"holds {member.file_size - header:,}: the archive is damaged; save it "
                        "again with numpy.savez"
                    )
    return total


def _npy_data_bytes(stream: Any) -> tuple[int, int]:
    """(bytes of data an ``.npy`` header declares, bytes of the header)."""
    version = np.lib.format.read_magic(stream)
    read = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }.get(version)
    if read is None:
        raise ValueError(f"unsupported .npy version {version}")
    shape, _, dtype = read(stream)
    return math.prod(shape) * dtype.itemsize, stream.tell()


def convert_pixels(
    x: np.ndarray, spec: InputSpec, progress: bool | None = False, desc: str = "resizing"
) -> np.ndarray:
    """uint8 rows (N,H,W[,C]) → model input, prepared exactly like image files.

    Every row goes through :func:`pixels_from_pil`, even one already at the model's size:
    that one step owns the colour conversion, crop, resize and channel order, so a
    ``channel_order="BGR"`` model gets its channels swapped whatever the stored size.
    """
    if x.ndim == 4 and x.shape[3] == 1:
        x = x[..., 0]
    pixels = np.empty((len(x), spec.height, spec.width, spec.channels), np.uint8)
    for i in progress_bar(range(len(x)), progress, desc):
        pixels[i] = pixels_from_pil(Image.fromarray(x[i]), spec)
    return to_model_input(pixels, spec)
