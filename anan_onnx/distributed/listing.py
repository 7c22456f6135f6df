"""The work list of a ``predict -o DIR`` run: the inputs cut into parts, never all in memory.

The arguments are grouped into *units*: each run of consecutive local arguments (files,
folders, ``@lists``, globs; ``--inputs-from`` lists are one more run) is one unit, listed
here as a stream (:func:`anan_onnx.runtime.input_paths.iter_inputs`, absolute paths), and
each URI argument (``s3://bucket/prefix``) is one unit listed where it is cheap: with
``--engine ray`` by one Ray task per URI, in parallel, on the workers. Each unit writes its
part lists (:func:`anan_onnx.distributed.parts.write_part_inputs`); the driver keeps only
the part names.

An object counts as an image by its name ending (reading each object's first bytes would
double the requests).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from anan_onnx.distributed.objects import filesystem
from anan_onnx.distributed.parts import INPUTS_DIR, write_part_inputs
from anan_onnx.errors import AnanError, first_line
from anan_onnx.runtime.input_paths import LIST_PREFIX, is_uri, iter_inputs

__all__ = ["build_work", "list_uri"]

#: Runs ``fn(*args)`` for each args tuple, possibly in parallel; returns the results in order.
Runner = Callable[[Callable[..., int], list[tuple[Any, ...]]], list[int]]


def list_uri(uri: str, out: str, unit: int, block: int) -> int:
    """Lists the images under ``uri`` (sorted) into the part lists of ``unit``; the count
    of parts. Runs on a worker with ``--engine ray``."""
    from pyarrow import fs

    from anan_onnx.runtime.image_files import IMAGE_EXTENSIONS

    scheme = uri.partition("://")[0]
    system, path = filesystem(uri)
    root = path.rstrip("/")
    try:
        info = system.get_file_info(root)
        if info.type == fs.FileType.File:
            found = [info]
        else:
            found = system.get_file_info(fs.FileSelector(root, recursive=True))
    except OSError as exc:
        raise AnanError(f"cannot list {uri} ({first_line(exc, 150)}): check the URI") from None
    names = sorted(
        f"{scheme}://{i.path}"
        for i in found
        if i.type == fs.FileType.File and i.path.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not names:
        raise AnanError(f"{uri} holds no image files: check the URI")
    return write_part_inputs(Path(out), unit, names, block)


def build_work(
    out: Path,
    items: Sequence[str | os.PathLike[str]],
    inputs_from: Sequence[str | os.PathLike[str]],
    block: int,
    runner: Runner | None = None,
) -> int:
    """Writes the work list of ``items`` under ``out/_inputs`` (replacing any older one);
    returns the number of parts. ``runner`` lists the URI units (default: here, in turn)."""
    folder = out / INPUTS_DIR
    shutil.rmtree(folder, ignore_errors=True)  # ours: rebuilt whole from the arguments
    folder.mkdir(parents=True)
    units: list[tuple[str, list[str]]] = []
    arguments = [os.fspath(i) for i in items] + [LIST_PREFIX + os.fspath(f) for f in inputs_from]
    for item in arguments:
        if is_uri(item):
            units.append(("uri", [item]))
        elif units and units[-1][0] == "local":
            units[-1][1].append(item)
        else:
            units.append(("local", [item]))
    parts = 0
    remote: list[tuple[Any, ...]] = []
    for unit, (kind, group) in enumerate(units):
        if kind == "uri":
            remote.append((group[0], str(out), unit, block))
        else:
            parts += write_part_inputs(
                out, unit, iter_inputs(group, absolute=True, uris=True), block
            )
    if remote:
        parts += sum((runner or _here)(list_uri, remote))
    if not parts:
        raise AnanError("no inputs: pass image files, folders, @list files or URIs")
    return parts


def _here(fn: Callable[..., int], calls: list[tuple[Any, ...]]) -> list[int]:
    return [fn(*args) for args in calls]
