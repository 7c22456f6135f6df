"""Reading and validating ONNX models, and writing any output files atomically, with
one-line errors."""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import onnx
from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model

from anan_onnx.errors import AnanError, first_line
from anan_onnx.files import open_regular
from anan_onnx.limits import EXTERNAL_DATA_BYTES
from anan_onnx.onnx_build import numpy_dtype

__all__ = [
    "check_external_data",
    "check_keras_archive",
    "check_output_path",
    "load_onnx",
    "model_kind",
    "recorded_file",
    "rename_dim",
    "require_onnx",
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
        AnanError: the file is missing, empty, or not a regular file (a directory, a FIFO,
            a device: refused before anything is read, see anan_onnx.files).
    """
    path = Path(path)
    with open_regular(path, "model") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise AnanError(f"model {path} is empty: pass a saved model file")
        head = f.read(8)
        if head == _HDF5_MAGIC:
            return "h5"
        f.seek(0)
        return "keras" if zipfile.is_zipfile(f) else "onnx"


_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")

#: Limits on a ``.keras`` archive, checked from its directory before anything is extracted
#: (Keras extracts it in memory). A JSON member (config.json, metadata.json) of a real
#: model is kilobytes to a few MB; a 4.6 MB archive whose config.json expands to 1.5 GiB
#: took 3.9 GB to convert. The whole archive is bounded by ONNX's 2 GiB protobuf limit,
#: which the converted model could not exceed anyway. docs/limits.md.
MAX_KERAS_JSON_BYTES = 64 * 2**20
MAX_KERAS_TOTAL_BYTES = 2 * 2**30
MAX_KERAS_MEMBERS = 10_000


def check_keras_archive(path: str | Path) -> None:
    """Refuses a ``.keras`` zip whose members would expand beyond the limits above.

    Raises:
        AnanError: the archive is damaged, or a member or the total is too large.
    """
    path = Path(path)
    try:
        with open_regular(path, "model") as f, zipfile.ZipFile(f) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise AnanError(
            f"{path} is a damaged Keras archive ({first_line(exc)}): save it again"
        ) from None
    if len(members) > MAX_KERAS_MEMBERS:
        raise AnanError(
            f"{path} holds {len(members):,} files, more than a Keras archive has "
            f"({MAX_KERAS_MEMBERS:,} at most): check the file"
        )
    total = 0
    for member in members:
        total += member.file_size
        if member.filename.lower().endswith(".json") and member.file_size > MAX_KERAS_JSON_BYTES:
            raise AnanError(
                f"{path}: {member.filename} expands to {member.file_size:,} bytes, more than "
                f"{MAX_KERAS_JSON_BYTES // 2**20} MiB (a real Keras config is a few MB at most): "
                "refused as a possible zip bomb (docs/limits.md)"
            )
    if total > MAX_KERAS_TOTAL_BYTES:
        raise AnanError(
            f"{path} expands to {total:,} bytes, more than {MAX_KERAS_TOTAL_BYTES // 2**30} GiB "
            "(ONNX models cannot exceed 2 GiB): refused (docs/limits.md)"
        )


def require_onnx(path: str | Path) -> Path:
    """``path`` if it is an ONNX file; a Keras model gets "run anan-onnx convert first".

    Raises:
        AnanError: the file is missing, empty, a directory or a Keras model.
    """
    path = Path(path)
    kind = model_kind(path)
    if kind != "onnx":
        what = "a Keras archive (.keras)" if kind == "keras" else "a Keras HDF5 model"
        raise AnanError(
            f"{path} is {what}; this command needs an ONNX model: run "
            f"`anan-onnx convert {path}` first"
        )
    return path


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Loads an ONNX model with a clear error for corrupt, Keras or non-ONNX files."""
    path = require_onnx(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
        if check_external_data(model, path):
            load_external_data_for_model(model, str(path.parent))
    except AnanError:
        raise
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


def check_external_data(model: onnx.ModelProto, path: Path) -> int:
    """Checks every external-data reference of ``model`` (loaded from ``path`` without its
    data) before anything is read, and pins each to its tensor's declared size.

    onnx reads an external tensor without a ``length`` to the end of its file: a 432-byte
    tensor pointing at a 3 GB sparse file took 6.4 GB. Here each file must be a regular file
    (a FIFO would block), hold the tensor's bytes at its offset, and a given ``length`` must
    equal the declared size; the total is bounded by
    :data:`anan_onnx.limits.EXTERNAL_DATA_BYTES`. Returns the number of external tensors.

    Raises:
        AnanError: naming the tensor and the problem.
    """
    total = count = 0
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        count += 1
        total += _checked_external(tensor, path)
        EXTERNAL_DATA_BYTES.check(total, f"{path} (its external data)")
    return count


def _checked_external(tensor: onnx.TensorProto, path: Path) -> int:
    """The declared size of one external tensor, checked against its file; its ``length``
    is set to that size so that onnx reads no more."""
    name = f"{path}: tensor {tensor.name!r}"
    try:
        info = ExternalDataInfo(tensor)
        itemsize = numpy_dtype(tensor.data_type).itemsize
    except (ValueError, TypeError, KeyError) as exc:
        raise AnanError(
            f"{name} has invalid external data ({first_line(exc)}): check the model"
        ) from None
    if tensor.data_type == onnx.TensorProto.STRING or any(d < 0 for d in tensor.dims):
        raise AnanError(f"{name} has external data of no fixed size: check the model")
    declared = itemsize * math.prod(tensor.dims)
    EXTERNAL_DATA_BYTES.check(declared, name)
    where = Path(str(info.location))
    if not info.location or where.is_absolute() or ".." in where.parts:
        raise AnanError(
            f"{name} has its data at {info.location!r}, outside the model's folder: keep "
            "external data beside the model"
        )
    offset = int(info.offset or 0)
    with open_regular(path.parent / where, "external data") as f:  # FIFOs refused here
        available = os.fstat(f.fileno()).st_size - offset
    if info.length is not None and int(info.length) != declared:
        raise AnanError(
            f"{name} declares {declared:,} bytes but its external data says "
            f"length={info.length}: the model is damaged; save it again"
        )
    if offset < 0 or available < declared:
        raise AnanError(
            f"{name} needs {declared:,} bytes at offset {offset:,} of {where}, which holds "
            f"{max(available, 0):,}: the external data file is truncated or not this model's"
        )
    _set_entry(tensor, "length", declared)
    return declared


def _set_entry(tensor: onnx.TensorProto, key: str, value: int) -> None:
    """Sets one ``external_data`` entry (onnx's setter wants the data in memory)."""
    for entry in tensor.external_data:
        if entry.key == key:
            entry.value = str(value)
            return
    entry = tensor.external_data.add()
    entry.key, entry.value = key, str(value)


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The tensors of a graph that may hold external data: initializers (sparse too) and
    tensor attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def recorded_file(model: str | Path, metadata: dict[str, str], key: str, option: str) -> Path:
    """The file that ``metadata[key]`` (e.g. ``base_model``) names beside ``model``.

    Only a plain file name counts: missing, empty, absolute, ``..`` or a path with folders
    is refused (it would point outside the model's folder, or nowhere).

    Raises:
        AnanError: naming the key and the option that gives the file instead.
    """
    name = metadata.get(key, "")
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise AnanError(
            f"{model} records {key}={name!r}, not a file name beside it: pass {option} "
            "with the file"
        )
    return Path(model).with_name(name)


def rename_dim(model: onnx.ModelProto, old: str, new: str | int) -> None:
    """Replaces the symbolic dimension ``old`` by ``new`` (a symbol or a size) in the
    inputs, outputs *and* shape hints (``value_info``) of the main graph, in place.

    Why: hints left with an old batch symbol (a PyTorch export's ``batch_size`` after the
    axis was renamed ``batch``, or ``batch`` after ``--batch N``) contradict the inputs;
    onnxruntime ignores them, but strict engines (tract) refuse to unify them. The hints
    themselves are kept: onnxruntime's layout passes need the shapes they give.
    """
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param == old:
                if isinstance(new, int):
                    dim.dim_value = new  # clears dim_param (a oneof)
                else:
                    dim.dim_param = new


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


def write_all_atomic(
    files: Sequence[tuple[bytes, str | Path]],
    check: Callable[[list[str]], None] | None = None,
) -> None:
    """Writes several files all or nothing: every one goes to a synced temp file beside its
    path first, and only when all are complete are they renamed into place.

    A failure while staging (no space, no permission) removes the temp files and leaves
    every output as it was. What remains is the window between the renames themselves:
    ``os.replace`` is atomic per file, so a crash of the machine or the process between two
    renames (microseconds, no I/O of the data) can leave the first files new and the others
    old. No file is ever seen half-written.

    ``check``, if given, is called with the temp files' paths (in ``files`` order) once all
    are complete and before any rename, e.g. to verify a model exactly as written; if it
    raises, nothing is replaced.

    Raises:
        AnanError: a file cannot be written; the message names it.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for data, path in files:
            staged.append((_stage(data, Path(path)), Path(path)))
        if check is not None:
            check([tmp for tmp, _ in staged])
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


def save_all_atomic(
    items: Sequence[tuple[onnx.ModelProto, str | Path]],
    check: Callable[[list[str]], None] | None = None,
) -> None:
    """Writes several models all or nothing (see :func:`write_all_atomic`, also for
    ``check``)."""
    write_all_atomic([(model.SerializeToString(), path) for model, path in items], check)


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
