"""Partitioned predictions: each part of the inputs predicted and written where it runs.

Layout of an output folder (``predict -o DIR``, local or ``--engine ray``)::

    DIR/_inputs/part-UUUUU-CCCCCC.txt   the inputs of each part, one per line (the manifest
                                        of the work, written before any prediction)
    DIR/part-UUUUU-CCCCCC.parquet       one row per input: input (its id: the absolute path
                                        or URI), label, class, probabilities, error
    DIR/errors/part-...parquet          the rows of that part that failed: input, error
    DIR/manifest.json                   counts, per-part checksums and one overall checksum

``UUUUU`` numbers the input units (a run of local arguments, or one URI), ``CCCCCC`` the
blocks of :data:`DEFAULT_BLOCK` inputs within it: part names depend only on the inputs and
the block size, so a rerun with the same ``-o`` finds the parts already committed (each
records the SHA-256 of its input list and of the model) and skips them.

A part file is written to a temp name and renamed (:func:`anan_onnx.model_io.write_bytes_atomic`):
a part exists whole or not at all. Whoever predicts a part returns only its
:class:`PartSummary` (counts, checksum, first error): nothing per image passes through the
driver.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx import limits
from anan_onnx.errors import AnanError

__all__ = [
    "DEFAULT_BLOCK",
    "ERRORS_DIR",
    "INPUTS_DIR",
    "MANIFEST",
    "PartPredictor",
    "PartSummary",
    "list_parts",
    "part_name",
    "write_part_inputs",
]

#: Inputs per part (``--block-images``): a retried or resumed part redoes at most this many.
DEFAULT_BLOCK = 1000
INPUTS_DIR = "_inputs"
ERRORS_DIR = "errors"
MANIFEST = "manifest.json"
_PART = "part-{unit:05d}-{chunk:06d}"
_KEY_INPUTS = b"anan.inputs_sha256"
_KEY_MODEL = b"anan.model_sha256"
_KEY_SUMMARY = b"anan.summary"


def part_name(unit: int, chunk: int) -> str:
    """``part-00001-000002``: the name of block ``chunk`` of input unit ``unit``."""
    return _PART.format(unit=unit, chunk=chunk)


@dataclasses.dataclass(frozen=True)
class PartSummary:
    """What predicting one part gave: its counts, the checksum of its rows, and the first
    failure's message (``""`` when none); ``resumed`` when it was found committed."""

    name: str
    images: int
    failed: int
    checksum: str
    first_error: str = ""
    resumed: bool = False

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the work list --------------------------------------------------------------------------


def write_part_inputs(out: Path, unit: int, inputs: Iterable[str], block: int) -> int:
    """Cuts ``inputs`` (streamed) into part lists ``_inputs/part-UNIT-*.txt``; returns how
    many parts. Memory: one block of inputs."""
    from anan_onnx.model_io import write_bytes_atomic

    folder = out / INPUTS_DIR
    chunk, lines = 0, []
    for item in inputs:
        if "\n" in item or "\r" in item:
            raise AnanError(f"input {item!r} has a line break in its name: rename it")
        lines.append(item)
        if len(lines) == block:
            write_bytes_atomic(_lines(lines), folder / f"{part_name(unit, chunk)}.txt")
            chunk, lines = chunk + 1, []
    if lines:
        write_bytes_atomic(_lines(lines), folder / f"{part_name(unit, chunk)}.txt")
        chunk += 1
    return chunk


def _lines(items: list[str]) -> bytes:
    return "".join(f"{i}\n" for i in items).encode("utf-8")


def list_parts(out: Path) -> list[str]:
    """The part names of ``out``'s work list, sorted (one per block: 10^5 for 10^8 images)."""
    folder = out / INPUTS_DIR
    return sorted(p.name[: -len(".txt")] for p in folder.glob("part-*.txt"))


# --- predicting a part ----------------------------------------------------------------------


class PartPredictor:
    """One onnxruntime session that predicts parts of an output folder.

    Args:
        model: the serialised ONNX model.
        out: the output folder (shared by every node with ``--engine ray``).
        threads: onnxruntime intra-op threads.
        batch_size: images per onnxruntime run.
        provider: onnxruntime's execution provider (``'cpu'``, ``'cuda'``...).
    """

    def __init__(
        self,
        model: bytes,
        out: str,
        *,
        threads: int = 1,
        batch_size: int = 64,
        provider: str = "cpu",
    ) -> None:
        import onnx

        from anan_onnx.metadata import class_names
        from anan_onnx.runtime.session import Session

        self.session = Session(
            onnx.load_model_from_string(model), provider=provider, threads=threads
        )
        spec = self.session.input_spec()
        if spec is None:
            raise AnanError("the model records no input size: convert it with anan-onnx")
        self.spec = spec
        self.names = class_names(self.session.metadata)
        self.model_sha = hashlib.sha256(model).hexdigest()
        self.out = Path(out)
        self.batch_size = batch_size
        self._fs: dict[str, Any] = {}  # filesystems by scheme://bucket

    def predict_part(self, name: str) -> PartSummary:
        """Predicts part ``name`` and commits its files, or returns the committed summary."""
        listing = (self.out / INPUTS_DIR / f"{name}.txt").read_bytes()
        inputs_sha = hashlib.sha256(listing).hexdigest()
        done = self._committed(name, inputs_sha)
        if done is not None:
            return done
        inputs = listing.decode("utf-8").splitlines()
        labels, probs, errors = self._predict(inputs)
        table = _table(inputs, labels, probs, errors, self.names)
        failed = [i for i, e in enumerate(errors) if e]
        summary = PartSummary(
            name, len(inputs), len(failed), _checksum(table), errors[failed[0]] if failed else ""
        )
        self._commit(name, table, failed, summary, inputs_sha)
        return summary

    def _predict(self, inputs: list[str]) -> tuple[list[int], list[np.ndarray | None], list[str]]:
        from anan_onnx.runtime.image_files import to_model_input
        from anan_onnx.runtime.labels import predicted_labels

        labels: list[int] = [-1] * len(inputs)
        probs: list[np.ndarray | None] = [None] * len(inputs)
        errors = [""] * len(inputs)
        for start in range(0, len(inputs), self.batch_size):
            pixels, rows = [], []
            for i in range(start, min(len(inputs), start + self.batch_size)):
                try:
                    pixels.append(self._pixels(inputs[i]))
                    rows.append(i)
                except DataNotVisible:
                    raise
                except AnanError as exc:
                    errors[i] = str(exc)
            if not rows:
                continue
            out = self.session.predict(to_model_input(np.stack(pixels), self.spec))
            out = out.reshape(len(rows), -1)
            for i, row in zip(rows, out, strict=True):
                if np.isfinite(row).all():
                    probs[i], labels[i] = row, int(predicted_labels(row[None])[0])
                else:
                    errors[i] = f"image {inputs[i]}: the model's outputs are not finite"
        return labels, probs, errors

    def _pixels(self, item: str) -> np.ndarray:
        from anan_onnx.runtime.image_files import pixels_from_bytes, read_pixels
        from anan_onnx.runtime.input_paths import is_uri

        if is_uri(item):
            return pixels_from_bytes(self._read_object(item), self.spec, item)
        if not os.path.lexists(item):  # the driver listed it: this node cannot see it
            raise not_visible(item)
        return read_pixels(item, self.spec)

    def _read_object(self, uri: str) -> bytes:
        from anan_onnx.distributed.objects import filesystem

        fs, path = filesystem(uri, self._fs)
        try:
            size = fs.get_file_info(path).size  # None where the store does not say
            if size is not None:  # before reading: the object is read whole to decode
                limits.IMAGE_BYTES.check(size, f"image {uri}")
            with fs.open_input_file(path) as f:
                return bytes(f.read())
        except FileNotFoundError:
            raise not_visible(uri) from None
        except OSError as exc:
            raise AnanError(f"image {uri} cannot be read ({exc}): check the bucket") from None

    # --- committed files

    def _committed(self, name: str, inputs_sha: str) -> PartSummary | None:
        import json

        import pyarrow.parquet as pq

        path = self.out / f"{name}.parquet"
        if not path.is_file():
            return None
        try:
            meta = pq.read_schema(path).metadata or {}
        except Exception:  # a foreign or damaged file: predicted again, replaced
            return None
        if meta.get(_KEY_INPUTS) != inputs_sha.encode() or meta.get(_KEY_MODEL) != (
            self.model_sha.encode()
        ):
            return None
        fields = json.loads(meta[_KEY_SUMMARY])
        return PartSummary(**{**fields, "resumed": True})

    def _commit(
        self, name: str, table: Any, failed: list[int], summary: PartSummary, inputs_sha: str
    ) -> None:
        import json

        meta = {
            _KEY_INPUTS: inputs_sha.encode(),
            _KEY_MODEL: self.model_sha.encode(),
            _KEY_SUMMARY: json.dumps(summary.to_row() | {"resumed": False}).encode(),
        }
        errors = self.out / ERRORS_DIR / f"{name}.parquet"
        if failed:  # first, so that a committed part always has its errors beside it
            _write_parquet(table.select(["input", "error"]).take(failed), errors)
        else:
            errors.unlink(missing_ok=True)
        _write_parquet(table.replace_schema_metadata(meta), self.out / f"{name}.parquet")


class DataNotVisible(AnanError):
    """An input the driver listed is not there for this worker: its node does not see the
    data. Fails the whole job at once rather than filling the output with failures."""


def not_visible(item: str) -> DataNotVisible:
    """The :class:`DataNotVisible` error for ``item`` (one argument, the message, as Ray
    needs to rebuild it on the driver)."""
    return DataNotVisible(
        f"input {item} is missing on worker node {_node()}: every node must see the inputs "
        "at the same path (a shared folder), or pass a bucket URI (s3://...)"
    )


def _node() -> str:
    import socket

    return socket.gethostname()


def _table(
    inputs: list[str],
    labels: list[int],
    probs: list[np.ndarray | None],
    errors: list[str],
    names: list[str] | None,
) -> Any:
    import pyarrow as pa

    def cls(label: int, p: np.ndarray | None) -> str | None:
        if p is None:
            return None
        width = 2 if len(p) == 1 else len(p)
        return names[label] if names and len(names) == width else str(label)

    return pa.table(
        {
            "input": pa.array(inputs, pa.string()),
            "label": pa.array(
                [lb if p is not None else None for lb, p in zip(labels, probs, strict=True)],
                pa.int64(),
            ),
            "class": pa.array(
                [cls(lb, p) for lb, p in zip(labels, probs, strict=True)], pa.string()
            ),
            "probabilities": pa.array(
                [None if p is None else p.astype(np.float32) for p in probs],
                pa.list_(pa.float32()),
            ),
            "error": pa.array([e or None for e in errors], pa.string()),
        }
    )


def _checksum(table: Any) -> str:
    """SHA-256 of the rows' content (not of the file's bytes, which depend on the writer)."""
    digest = hashlib.sha256()
    for row in table.to_pylist():
        probs = row["probabilities"]
        digest.update(f"{row['input']}\0{row['label']}\0{row['error'] or ''}\0".encode())
        if probs is not None:
            digest.update(np.asarray(probs, np.float32).tobytes())
    return digest.hexdigest()


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from anan_onnx.model_io import write_bytes_atomic

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes_atomic(sink.getvalue().to_pybytes(), path)


def iter_rows(out: Path) -> Iterator[dict[str, Any]]:
    """The rows of a finished output folder, part by part (for tests and small outputs)."""
    import pyarrow.parquet as pq

    for name in list_parts(out):
        yield from pq.read_table(out / f"{name}.parquet").to_pylist()
