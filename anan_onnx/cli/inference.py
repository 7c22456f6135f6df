"""The ``inspect`` and ``predict`` commands: inference only.

In a module of their own so that an import-linter contract (pyproject.toml) can state what
the README promises: these commands never import TensorFlow, Keras or tf2onnx, not even
lazily (the ``convert`` command in :mod:`anan_onnx.cli.app` does, inside its function).
The parsers stay in ``app``; the commands' bodies are here.

``predict`` reads and runs its inputs in batches (``--batch-size``; default sized by memory,
see :func:`anan_onnx.runtime.session.default_batch_size`), in the order given, so memory
does not grow with the number of files; a tqdm bar shows progress on a terminal only.

Input files that cannot be read (a corrupt image, a damaged ``.npy``, the wrong shape):

* text: each gets a row ``FILE<TAB>error=REASON`` where its predictions would be (an image
  with the batch it was read in), the other inputs still run, and at the end one error line
  gives the count and the first such file, exit status 2.
* ``--json``: the first one stops the command with one error line and nothing on stdout
  (the document is written only when every input was read).

Output policy for a non-finite model output (NaN/Inf; the inputs themselves are checked
finite, so this means the model or its ANAN gains overflow float32):

* text: rows are printed as they are computed; at the first non-finite row the command
  stops with one error line naming the input, exit status 2. A NaN is never printed as a
  prediction.
* ``--json``: the document is written at the end and is always valid JSON; a non-finite
  row has ``"probabilities": null, "label": null`` and an ``"error"``; ``"non_finite"``
  counts them; one error line on stderr and exit status 2 when there is any.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anan_onnx import json_clean
from anan_onnx.cli.describe import describe_input, describe_sources, model_bytes
from anan_onnx.errors import AnanError
from anan_onnx.metadata import class_names, is_anan, read_metadata
from anan_onnx.params import AnanParams
from anan_onnx.runtime.input_paths import iter_inputs
from anan_onnx.runtime.labels import predicted_labels
from anan_onnx.runtime.npy import load_npy
from anan_onnx.runtime.session import Session
from anan_onnx.text import shown

if TYPE_CHECKING:
    import onnx

__all__ = ["batch_size_of", "cmd_inspect", "cmd_predict", "target_text"]


def cmd_inspect(args: argparse.Namespace) -> int:
    """``anan-onnx inspect``: metadata, inputs/outputs, opset and op counts of a model."""
    from anan_onnx.model_io import load_onnx  # onnx: not for predict's start-up

    model = load_onnx(args.model)
    meta = read_metadata(model)
    ops = Counter(n.op_type for n in model.graph.node)
    inits = {i.name for i in model.graph.initializer}
    info: dict[str, Any] = {
        "file": str(args.model),
        "bytes": model_bytes(args.model),
        "kind": "anan" if is_anan(meta) else "base",
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": {i.name: _dims(i) for i in model.graph.input if i.name not in inits},
        "outputs": {o.name: _dims(o) for o in model.graph.output},
        "metadata": meta,
        "nodes": len(model.graph.node),
        "op_counts": dict(ops.most_common()),
    }
    if args.json:
        print(json_clean.dumps(info))
        return 0
    print(
        f"{shown(info['file'])}: {info['kind']} model, {info['bytes'] / 1e6:.2f} MB, "
        f"IR {info['ir_version']}, opset {info['opset'].get('ai.onnx')}"
    )
    for name, dims in info["inputs"].items():
        print(f"  input  {shown(name, _FIELD)}: {shown(dims, _FIELD)}")
    for name, dims in info["outputs"].items():
        print(f"  output {shown(name, _FIELD)}: {shown(dims, _FIELD)}")
    if "height" in meta:
        print(f"  image input : {shown(describe_input(meta), _FIELD)}")
        for line in describe_sources(meta):
            print(f"                {shown(line, _FIELD)}")
    names = class_names(meta)
    if names:
        print(f"  classes     : {shown(', '.join(names), _FIELD)}")
    if info["kind"] == "anan":
        print(f"  target layer: {shown(target_text(meta), _FIELD)}")
        print(f"  parameters  : {AnanParams.from_strings(meta).describe()}")
    for key in sorted(meta):
        value = meta[key]
        if key in ("keras_convs", "keras_before"):  # JSON maps, long: summarised
            value = f"(JSON, {len(value)} characters; see --json)"
        print(f"  anan.{shown(key, _FIELD)} = {shown(value, _FIELD)}")
    print(f"  {info['nodes']} nodes: " + ", ".join(f"{op} {n}" for op, n in ops.most_common()))
    return 0


#: Most characters of one value ``inspect`` prints in text mode (``--json`` has them all):
#: a 50 MB class string must not flood the terminal.
_FIELD = 500


def target_text(meta: dict[str, str]) -> str:
    """``node (Keras layer 'x'): reason`` from an ANAN model's metadata."""
    text = str(meta.get("target_layer"))
    if meta.get("target_keras_layer"):
        text += f" (Keras layer {meta['target_keras_layer']!r})"
    if meta.get("target_reason"):
        text += f": {meta['target_reason']}"
    return text


def cmd_predict(args: argparse.Namespace) -> int:
    """``anan-onnx predict``: probabilities, labels and class names of images and .npy
    batches, streamed (see the policy in the module docstring)."""
    session = Session(args.model, provider=args.provider, threads=args.threads)
    if len(session.output_names) > 1:  # which one is the prediction is not ours to guess
        raise AnanError(
            f"the model has {len(session.output_names)} outputs "
            f"({', '.join(session.output_names[:4])}): predict reads a classifier's one "
            "output; export the model with only its prediction as output"
        )
    size = batch_size_of(session, args.batch_size, [*map(Path, args.inputs), *args.inputs_from])
    names = class_names(session.metadata)
    paths = map(Path, iter_inputs(args.inputs, inputs_from=args.inputs_from))  # streamed
    if args.json:
        return _print_json(args.model, _chunks(session, paths, size, skip=False), names)
    if getattr(args, "output", None) is not None:  # -o FILE.jsonl|.csv (app routes DIR)
        return _write_file(args, _chunks(session, paths, size, skip=True), names)
    unreadable: list[str] = []
    for inputs, outputs, errors in _chunks(session, paths, size, skip=True):
        for name, message in errors:  # a bad file is a row too: the others still run
            print(f"{shown(name)}\terror={shown(message)}")
            unreadable.append(message)
        for name, row in zip(inputs, outputs, strict=True):
            if not np.isfinite(row).all():
                raise AnanError(_non_finite_message(name, row))
            print(_text_row(name, row, names))
        sys.stdout.flush()
    if unreadable:
        raise AnanError(
            f"{len(unreadable)} input file(s) could not be read, their rows say error=...; "
            f"the first: {unreadable[0]}"
        )
    return 0


#: ``-o`` names a file, not a partitioned folder, when it ends so.
FILE_OUTPUTS = (".jsonl", ".csv")
_COLUMNS = ("input", "label", "class", "probabilities", "error")


def _write_file(args: argparse.Namespace, chunks: Iterable[Chunk], names: list[str] | None) -> int:
    """Streams one record per input into a temp file beside ``-o``, renamed onto it when
    every input has its row; the failures are counted against ``--max-failed``."""
    import csv
    import os
    import tempfile

    from anan_onnx.distributed.predict import allowed_failures

    output: Path = args.output
    allowed_failures(args.max_failed, 0)  # checked before any work
    if output.is_dir():
        raise AnanError(f"-o {output} is a folder: pass a file name (or drop .jsonl/.csv)")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnanError(f"cannot write {output} ({exc.strerror}): pick a writable path") from None
    fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    total, failed = 0, []
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            table = csv.writer(f) if output.suffix.lower() == ".csv" else None
            if table is not None:
                table.writerow(_COLUMNS)
            for record in _records(chunks, names):
                total += 1
                if record["error"]:
                    failed.append(str(record["error"]))
                if table is None:
                    f.write(json.dumps(record, allow_nan=False) + "\n")
                else:
                    probs = record["probabilities"]
                    record["probabilities"] = json.dumps(probs) if probs else None
                    table.writerow(["" if record[k] is None else record[k] for k in _COLUMNS])
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, output)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    print(f"predicted {total - len(failed)} of {total} inputs ({len(failed)} failed) -> {output}")
    if len(failed) > allowed_failures(args.max_failed, total):
        raise AnanError(
            f"{len(failed)} of {total} inputs failed (first: {failed[0]}); their rows in "
            f"{output} say why: fix or remove them, or allow some with --max-failed"
        )
    return 0


def _records(chunks: Iterable[Chunk], names: list[str] | None) -> Iterator[dict[str, Any]]:
    """The rows of ``-o FILE``: the columns of ``-o DIR``'s parts, in input order."""
    for inputs, outputs, errors in chunks:
        for name, message in errors:
            yield dict.fromkeys(_COLUMNS) | {"input": name, "error": message}
        for name, row in zip(inputs, outputs, strict=True):
            if not np.isfinite(row).all():
                yield dict.fromkeys(_COLUMNS) | {
                    "input": name,
                    "error": _non_finite_message(name, row),
                }
                continue
            label = _label(row)
            cls = _class(label, names, len(row))
            yield {"input": name, "label": label, "class": str(label) if cls is None else cls,
                   "probabilities": [float(v) for v in row], "error": None}  # fmt: skip


def batch_size_of(session: Session, given: int | None, paths: Sequence[str | Path]) -> int:
    """``--batch-size`` checked against the limits (its inputs' memory: from the graph, or
    for images of a dynamic-size graph from the recorded size), else the default.
    ``paths``: the arguments (images unless every one is a ``.npy`` file)."""
    if given is None:
        return session.default_batch_size()
    images = any(not str(p).lower().endswith(".npy") for p in paths)
    return session.checked_batch_size(given, session.input_spec() if images else None)


Chunk = tuple[list[str], np.ndarray, list[tuple[str, str]]]


def _chunks(session, paths: Iterable[Path], size: int, *, skip: bool) -> Iterator[Chunk]:
    """(input names, outputs as rows, unreadable files with the reason) per batch, in the
    order the inputs were given. A file that cannot be read or run stops everything
    (``skip=False``), or is reported in the third element and left out (``skip=True``)."""
    from anan_onnx.runtime.image_files import iter_image_batches  # Pillow: only for images

    spec = None
    for group, is_npy in _groups(paths):
        if is_npy:
            for path in group:
                try:
                    yield from _npy_chunks(session, path, size)
                except AnanError as exc:
                    if not skip:
                        raise
                    yield [], np.empty((0, 1), np.float32), [(str(path), str(exc))]
            continue
        if spec is None:
            spec = session.input_spec()
            if spec is None:
                raise AnanError(
                    "the model records no input size: predict .npy batches, or convert the "
                    "model with anan-onnx"
                )
        pending = iter(group)  # the batches take the group's files in order
        for batch in iter_image_batches(
            group, spec, batch_size=size, progress=True, on_error="skip" if skip else "raise"
        ):
            rows = np.empty((0, 1), np.float32)  # a batch of unreadable files only
            if batch.names:
                out = session.predict(batch.x)
                rows = out.reshape(len(out), -1)
            yield from _in_order(batch.names, rows, batch.skipped, pending)


def _in_order(
    names: list[str], rows: np.ndarray, skipped: list[tuple[str, str]], pending: Iterator[Path]
) -> Iterator[Chunk]:
    """One image batch as chunks of consecutive read or unreadable files, in the order the
    files were given (``pending``: the files still to come, read and skipped alike), so
    that each consumer, printing a chunk's errors before its rows, keeps the input order."""
    read: list[bool] = []
    i = 0
    for _ in range(len(names) + len(skipped)):
        read.append(i < len(names) and names[i] == str(next(pending)))
        i += read[-1]
    i = j = 0
    for ok, run in itertools.groupby(read):
        k = len(list(run))
        if ok:
            yield names[i : i + k], rows[i : i + k], []
            i += k
        else:
            yield [], rows[:0], skipped[j : j + k]
            j += k


def _npy_chunks(session: Session, path: Path, size: int) -> Iterator[Chunk]:
    """The chunks of one ``.npy`` batch (memory-mapped, ``size`` images at a time)."""
    array = load_npy(path)
    if session.raw_input and array.dtype != np.uint8:
        raise AnanError(
            f"{path} holds {array.dtype} values but this model (export --raw-input) takes "
            "uint8 NHWC pixels 0-255, unscaled: save the .npy as uint8 pixels"
        )
    if array.ndim == len(session.input_shape) - 1:
        array = array[None]
    for start in range(0, max(len(array), 1), size):
        name = f"{path}" if start == 0 else f"{path} (images from {start})"
        out = session.predict(array[start : start + size], name=name)
        rows = out.reshape(len(out), -1)
        yield [f"{path}[{start + i}]" for i in range(len(rows))], rows, []


#: Most paths held at once by predict (a run of images is cut here): a list file of 10^6
#: lines is streamed.
_RUN = 10_000


def _groups(paths: Iterable[Path]) -> Iterator[tuple[list[Path], bool]]:
    """Consecutive runs of image files and of ``.npy`` files (at most :data:`_RUN` each)."""
    run: list[Path] = []
    for path in paths:
        is_npy = path.suffix.lower() == ".npy"
        if run and ((run[-1].suffix.lower() == ".npy") != is_npy or len(run) == _RUN):
            yield run, run[-1].suffix.lower() == ".npy"
            run = []
        run.append(path)
    if run:
        yield run, run[-1].suffix.lower() == ".npy"


def _label(row: np.ndarray) -> int:
    return int(predicted_labels(row[None])[0])


def _class(label: int, names: list[str] | None, width: int) -> str | None:
    """The name of ``label`` if names are recorded and fit the output."""
    expected = 2 if width == 1 else width
    if names is None or len(names) != expected:
        return None
    return names[label]


def _text_row(name: str, row: np.ndarray, names: list[str] | None) -> str:
    label = _label(row)
    text = f"{shown(name)}\t{' '.join(f'{v:.6f}' for v in row)}\tlabel={label}"
    cls = _class(label, names, len(row))
    return text if cls is None else f"{text}\tclass={shown(cls)}"


def _non_finite_message(name: str, row: np.ndarray) -> str:
    what = "NaN" if np.isnan(row).any() else "Inf"
    return (
        f"the model output for {name} is {what}, not a prediction: the model's weights or "
        "ANAN gains overflow float32; re-convert it (smaller a, b or k) or check the model"
    )


def _print_json(model: Path, chunks, names: list[str] | None) -> int:
    """Collects every row, then writes one valid JSON document; 2 if any row is non-finite."""
    inputs: list[str] = []
    outputs: list[np.ndarray] = []
    for chunk_inputs, chunk_outputs, _ in chunks:  # nothing is printed before all succeed
        inputs += chunk_inputs
        outputs.append(chunk_outputs)
    rows = np.concatenate(outputs) if outputs else np.empty((0, 1), np.float32)
    bad = [i for i, row in enumerate(rows) if not np.isfinite(row).all()]
    out = sys.stdout
    out.write('{\n  "model": ' + json.dumps(str(model)) + ',\n  "predictions": [')
    for i, (name, row) in enumerate(zip(inputs, rows, strict=True)):
        out.write(
            ("\n    " if i == 0 else ",\n    ")
            + json.dumps(json_clean.clean(_json_row(name, row, names)), allow_nan=False)
        )
    out.write(f'\n  ],\n  "non_finite": {len(bad)}\n}}\n')
    out.flush()
    if bad:
        first = inputs[bad[0]]
        print(
            f"anan-onnx: error: {len(bad)} of {len(rows)} inputs gave a non-finite output "
            f"(first: {first}), written as null: the model's weights or ANAN gains overflow "
            "float32; re-convert it (smaller a, b or k) or check the model",
            file=sys.stderr,
        )
        return 2
    return 0


def _json_row(name: str, row: np.ndarray, names: list[str] | None) -> dict[str, object]:
    if not np.isfinite(row).all():
        result: dict[str, object] = {
            "input": name,
            "probabilities": None,
            "label": None,
            "error": "non-finite output (" + ("NaN" if np.isnan(row).any() else "Inf") + ")",
        }
        if names is not None:
            result["class"] = None
        return result
    label = _label(row)
    result = {"input": name, "probabilities": [float(v) for v in row], "label": label}
    cls = _class(label, names, len(row))
    if cls is not None:
        result["class"] = cls
    return result


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value.type.tensor_type.shape.dim
    ]
