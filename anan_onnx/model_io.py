"""Reading and validating ONNX models, and writing any output files atomically, with
one-line errors."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import onnx

from anan_onnx.errors import AnanError, first_line

__all__ = [
    "check_output_path",
    "load_onnx",
    "model_kind",
    "save_all_atomic",
    "save_atomic",
    "validate",
    "write_all_atomic",
    "write_bytes_atomic",
]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def model_kind(path: str | Path) -> str:
    """``'keras'`` (zip), ``'h5'`` (HDF5) or ``'onnx'``, by content, not by name.

    Raises:
        AnanError: the file is missing, empty or a directory.
    """
    path = Path(path)
    if not path.exists():
        raise AnanError(f"{path}: no such file: check the path")
    if path.is_dir():
        raise AnanError(f"{path} is a directory: pass a model file (.keras, .h5 or .onnx)")
    if path.stat().st_size == 0:
        raise AnanError(f"{path} is empty: pass a saved model file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _HDF5_MAGIC:
        return "h5"
    if zipfile.is_zipfile(path):
        return "keras"
    return "onnx"


_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Loads an ONNX model with a clear error for corrupt or non-ONNX files."""
    path = Path(path)
    model_kind(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        if path.suffix.lower() in _KERAS_SUFFIXES:
            raise AnanError(
                f"{path} is named {path.suffix} but is neither a Keras archive (zip) nor an "
                "HDF5 file, nor ONNX: check the file (it may be damaged or something else)"
            ) from None
        raise AnanError(
            f"{path} is not a readable ONNX model ({first_line(exc)}): check the file"
        ) from None
    if not model.graph.node:
        raise AnanError(f"{path} holds no ONNX graph: pass a model file (.keras, .h5 or .onnx)")
    return model


def validate(model: onnx.ModelProto, what: str = "the rewritten model") -> onnx.ModelProto:
    """Full onnx.checker run plus strict shape inference; returns the inferred model."""
    try:
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise AnanError(
            f"{what} failed ONNX validation ({first_line(exc)}): nothing was written; "
            "please report this with the model"
        ) from None


def check_output_path(source: str | Path, output: str | Path) -> Path:
    """Refuses an output that would overwrite the input or cannot be written."""
    source, output = Path(source), Path(output)
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise AnanError(f"output {output} is the input file: pass another -o path")
    if output.is_dir():
        raise AnanError(
            f"output {output} is a directory: pass a file path such as {output}/model.anan.onnx"
        )
    parent = output.parent if str(output.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise AnanError(f"cannot write to {parent}: pass -o in a writable directory")
    return output


def write_all_atomic(files: Sequence[tuple[bytes, str | Path]]) -> None:
    """Writes several files all or nothing: every one goes to a synced temp file beside its
    path first, and only when all are complete are they renamed into place.

    A failure while staging (no space, no permission) removes the temp files and leaves
    every output as it was. What remains is the window between the renames themselves:
    ``os.replace`` is atomic per file, so a crash of the machine or the process between two
    renames (microseconds, no I/O of the data) can leave the first files new and the others
    old. No file is ever seen half-written.

    Raises:
        AnanError: a file cannot be written; the message names it.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for data, path in files:
            staged.append((_stage(data, Path(path)), Path(path)))
        for tmp, path in staged:
            _rename(tmp, path)
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)  # no-op for the renamed ones


def write_bytes_atomic(data: bytes, path: str | Path) -> None:
    """Writes via a temp file in the same directory and ``os.replace``: no partial file."""
    write_all_atomic([(data, path)])


def save_atomic(model: onnx.ModelProto, path: str | Path) -> None:
    """Serialises ``model`` and writes it atomically."""
    write_bytes_atomic(model.SerializeToString(), path)


def save_all_atomic(items: Sequence[tuple[onnx.ModelProto, str | Path]]) -> None:
    """Writes several models all or nothing (see :func:`write_all_atomic`)."""
    write_all_atomic([(model.SerializeToString(), path) for model, path in items])


def _rename(tmp: str, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:  # e.g. the path became a folder meanwhile
        raise AnanError(
            f"cannot write {path} ({exc.strerror}): free space or pick another path"
        ) from None


def _stage(data: bytes, path: Path) -> str:
    """A synced temp file holding ``data`` next to ``path``; its name is returned."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise AnanError(
            f"cannot write {path} ({exc.strerror}): pick a writable output path"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AnanError(
            f"cannot write {path} ({exc.strerror}): free space or pick another path"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
