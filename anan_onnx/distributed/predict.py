"""``anan-onnx predict --engine ray``: Ray Data over image paths, an actor pool of sessions.

Pipeline::

    paths (folders, globs, list files; sorted, numbered)
      -> ray.data.from_items([{index, path}])            # only paths travel, not pixels
      -> map_batches(_Predictor, ActorPool(workers))     # each actor: one onnxruntime
                                                         #   session, its own threads;
                                                         #   reads + preprocesses its
                                                         #   images (runtime.image_files)
      -> iter_batches (order preserved) on the driver
      -> one temp file, renamed onto --output when complete (.parquet, .csv or .jsonl)

Each row: ``index``, ``path``, ``label`` (class index), ``class`` (the name from the model's
``anan.classes`` metadata, else the index), ``probabilities`` and ``error``. An image that
cannot be read, or whose outputs are not finite, gets a row with its ``error`` and no
probabilities; it is listed on stderr and does not stop the run, unless ``strict``
(then nothing is written). A worker that dies is restarted and its batch retried
(``max_restarts``/``max_task_retries``): the predictions are per image, so a retried batch
gives the same rows.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx.errors import AnanError
from anan_onnx.limits import positive_int

__all__ = ["OUTPUT_FORMATS", "PredictSummary", "expand_inputs", "predict_ray"]

OUTPUT_FORMATS: tuple[str, ...] = (".parquet", ".csv", ".jsonl")
CSV_COLUMNS: tuple[str, ...] = ("path", "label", "class", "error", "probabilities")
#: Actor restarts and retries of a batch whose worker died.
MAX_RESTARTS = 3


@dataclasses.dataclass
class PredictSummary:
    """What :func:`predict_ray` did: images, failures ``(path, message)``, output."""

    images: int
    failed: list[tuple[str, str]]
    output: Path
    seconds: float


# --- inputs --------------------------------------------------------------------------------


def expand_inputs(inputs: Sequence[str | Path]) -> list[str]:
    """Image paths from folders (their image files, recursively, sorted), glob patterns
    (sorted matches) and list files (``.txt``/``.lst``: one path per line, relative to the
    list's folder; ``#`` comments). Order: as given, each expanded in sorted order.

    Raises:
        AnanError: an input that does not exist, matches nothing or lists nothing.
    """
    from anan_onnx.runtime.image_files import IMAGE_EXTENSIONS

    paths: list[str] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found = sorted(
                str(p)
                for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            )
            if not found:
                raise AnanError(f"folder {text} has no image files: pass a folder of images")
            paths += found
        elif path.suffix.lower() in (".txt", ".lst") and path.is_file():
            paths += _read_list(path)
        elif any(c in text for c in "*?["):
            found = sorted(glob.glob(text, recursive=True))
            if not found:
                raise AnanError(f"pattern {text} matches no files: check the pattern")
            paths += found
        elif path.is_file():
            paths.append(text)
        else:
            raise AnanError(f"input {text} does not exist: pass image files, folders or globs")
    return paths


def _read_list(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnanError(f"list file {path} cannot be read ({exc}): pass a text file") from None
    items = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not items:
        raise AnanError(f"list file {path} lists no images: one image path per line")
    return [str(path.parent / item) if not os.path.isabs(item) else item for item in items]


def _check_output(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise AnanError(
            f"--output {output}: unknown format {suffix or '(none)'}: end it in "
            f"{', '.join(OUTPUT_FORMATS)}"
        )
    if output.is_dir():
        raise AnanError(f"--output {output} is a folder: pass a file name")
    return suffix


# --- the actors ----------------------------------------------------------------------------


def class_names(metadata: dict[str, str]) -> list[str] | None:
    """The model's class names (``anan.classes``, a JSON list), or None."""
    raw = metadata.get("classes")
    if not raw:
        return None
    try:
        names = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


class _Predictor:
    """A Ray Data actor: one onnxruntime session; a batch of paths -> rows."""

    def __init__(self, model: bytes, threads: int, fault: str | None = None) -> None:
        import onnx

        from anan_onnx.runtime.session import Session

        self.session = Session(onnx.load_model_from_string(model), threads=threads)
        spec = self.session.input_spec()
        if spec is None:
            raise AnanError("the model records no input size: convert it with anan-onnx")
        self.spec = spec
        self.names = class_names(self.session.metadata)
        self.fault = fault

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from anan_onnx.runtime.image_files import load_images
        from anan_onnx.runtime.labels import predicted_labels

        paths = [str(p) for p in batch["path"]]
        self._maybe_die()
        x, loaded, skipped = load_images(paths, self.spec, on_error="skip", progress=False)
        errors = dict(skipped)
        probs: dict[str, np.ndarray] = {}
        if loaded:
            out = self.session.predict(x).reshape(len(loaded), -1)
            for p, row in zip(loaded, out, strict=True):
                if np.all(np.isfinite(row)):
                    probs[p] = row
                else:
                    errors[p] = f"image {p}: the model's outputs are not finite"
        rows: dict[str, list[Any]] = {"label": [], "class": [], "probabilities": [], "error": []}
        for p in paths:
            found = probs.get(p)
            if found is None:
                rows["label"].append(-1)
                rows["class"].append("")
                rows["probabilities"].append([])
                rows["error"].append(errors.get(p, f"image {p}: not predicted"))
                continue
            row = found
            label = int(predicted_labels(row[None])[0])
            name = self.names[label] if self.names and label < len(self.names) else str(label)
            rows["label"].append(label)
            rows["class"].append(name)
            rows["probabilities"].append([float(v) for v in row])
            rows["error"].append("")
        return {
            "index": np.asarray(batch["index"], np.int64),
            "path": np.asarray(paths, dtype=object),
            "label": np.asarray(rows["label"], np.int64),
            "class": np.asarray(rows["class"], dtype=object),
            "probabilities": _object_column(rows["probabilities"]),
            "error": np.asarray(rows["error"], dtype=object),
        }

    def _maybe_die(self) -> None:
        """Test hook: the first batch after the marker is gone kills this worker once."""
        if self.fault and not os.path.exists(self.fault):
            with open(self.fault, "w") as marker:
                marker.write(f"killed a predict actor in process {os.getpid()}\n")
            os._exit(1)


def _object_column(values: list[list[float]]) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        column[i] = v
    return column


# --- writing -------------------------------------------------------------------------------


class _Writer:
    """Rows to a temp file beside ``output``; renamed onto it by :meth:`commit`."""

    def __init__(self, output: Path, suffix: str, names: list[str] | None) -> None:
        output.parent.mkdir(parents=True, exist_ok=True)
        self.output, self.suffix, self.names = output, suffix, names
        self.temp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        self._file: Any = None
        self._parquet: Any = None
        self._csv: Any = None

    def write(self, batch: dict[str, np.ndarray]) -> None:
        if self.suffix == ".parquet":
            self._write_parquet(batch)
            return
        if self._file is None:
            self._file = open(self.temp, "w", newline="")  # noqa: SIM115 - closed in commit
            self._csv = csv.writer(self._file)
            if self.suffix == ".csv":
                self._csv.writerow(CSV_COLUMNS)
        for i in range(len(batch["path"])):
            failed = bool(batch["error"][i])
            probs = [float(v) for v in batch["probabilities"][i]]
            record = {
                "path": str(batch["path"][i]),
                "label": None if failed else int(batch["label"][i]),
                "class": None if failed else str(batch["class"][i]),
                "error": str(batch["error"][i]) or None,
                "probabilities": probs or None,
            }
            if self.suffix == ".jsonl":
                self._file.write(json.dumps(record, allow_nan=False) + "\n")
            else:  # probabilities as a JSON list: one column whatever the number of classes
                cells = [record[k] for k in CSV_COLUMNS[:-1]]
                cells.append(json.dumps(probs) if probs else None)
                self._csv.writerow(["" if c is None else c for c in cells])

    def _write_parquet(self, batch: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "path": pa.array([str(p) for p in batch["path"]], pa.string()),
                "label": pa.array(
                    [
                        None if e else int(v)
                        for v, e in zip(batch["label"], batch["error"], strict=True)
                    ],
                    pa.int64(),
                ),
                "class": pa.array(
                    [
                        None if e else str(c)
                        for c, e in zip(batch["class"], batch["error"], strict=True)
                    ],
                    pa.string(),
                ),
                "probabilities": pa.array(
                    [[float(v) for v in p] if len(p) else None for p in batch["probabilities"]],
                    pa.list_(pa.float32()),
                ),
                "error": pa.array([str(e) or None for e in batch["error"]], pa.string()),
            }
        )
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.temp, table.schema)
        self._parquet.write_table(table)

    def commit(self) -> None:
        self._close()
        if not self.temp.exists():  # no rows at all: still a valid, empty file
            self._empty()
        os.replace(self.temp, self.output)

    def _empty(self) -> None:
        if self.suffix == ".parquet":
            self._write_parquet(
                {
                    k: np.asarray([], dtype=object)
                    for k in ("path", "label", "class", "probabilities", "error")
                }
            )
            self._close()
        else:
            self.temp.write_text(",".join(CSV_COLUMNS) + "\n" if self.suffix == ".csv" else "")

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def abort(self) -> None:
        self._close()
        self.temp.unlink(missing_ok=True)


# --- the run -------------------------------------------------------------------------------


def predict_ray(
    model: str | Path,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    batch_size: int = 64,
    strict: bool = False,
    fault: str | None = None,
) -> PredictSummary:
    """Predicts every input image on a Ray cluster and writes one row per image.

    Args:
        model: ``.onnx`` model whose metadata records the preprocessing.
        inputs: image files, folders, glob patterns or list files (:func:`expand_inputs`).
        output: ``.parquet``, ``.csv`` or ``.jsonl``; written atomically.
        address: Ray cluster (default: a local one is started, and stopped at the end).
        workers: actors in the pool (default: the cluster's CPUs / threads).
        threads: onnxruntime intra-op threads per actor (default 1: one actor per CPU).
        batch_size: images per actor call.
        strict: an image that fails fails the run (nothing written).
        fault: test hook, see :data:`anan_onnx.distributed.ray_engine.FAULT_ENV`.
    """
    import time

    from anan_onnx.distributed.ray_engine import FAULT_ENV, connect, require_ray
    from anan_onnx.metadata import read_metadata
    from anan_onnx.model_io import load_onnx
    from anan_onnx.runtime.inputs import InputSpec

    output = Path(output)
    suffix = _check_output(output)
    batch_size = positive_int("--batch-size", batch_size)
    paths = expand_inputs(inputs)
    proto = load_onnx(model)
    metadata = read_metadata(proto)
    InputSpec.from_metadata(metadata)  # refuses a model without preprocessing, here
    names = class_names(metadata)
    ray = require_ray()
    start = time.perf_counter()
    started = connect(address)
    try:
        threads = threads or 1
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = max(1, workers or cpus // threads)
        fault = fault if fault is not None else os.environ.get(FAULT_ENV) or None
        batches = _run(ray, proto.SerializeToString(), paths, pool, threads, batch_size, fault)
        summary = _write(batches, output, suffix, names, strict, len(paths))
    finally:
        if started:
            ray.shutdown()
    summary.seconds = time.perf_counter() - start
    return summary


def _run(
    ray: Any,
    model: bytes,
    paths: list[str],
    pool: int,
    threads: int,
    batch_size: int,
    fault: str | None,
) -> Iterator[dict[str, np.ndarray]]:
    import logging

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-run INFO lines
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in input order
    context.enable_progress_bars = False
    items = [{"index": i, "path": p} for i, p in enumerate(paths)]
    blocks = max(1, min(len(items), 4 * pool))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    predicted = dataset.map_batches(
        _Predictor,
        fn_constructor_kwargs={"model": model, "threads": threads, "fault": fault},
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=pool,
        num_cpus=threads,
        max_restarts=MAX_RESTARTS,
        max_task_retries=MAX_RESTARTS,
    )
    yield from predicted.iter_batches(batch_size=None, batch_format="numpy")


def _write(
    batches: Iterator[dict[str, np.ndarray]],
    output: Path,
    suffix: str,
    names: list[str] | None,
    strict: bool,
    expected: int,
) -> PredictSummary:
    writer = _Writer(output, suffix, names)
    failed: list[tuple[str, str]] = []
    seen = 0
    try:
        for batch in batches:
            for path, error in zip(batch["path"], batch["error"], strict=True):
                if error:
                    failed.append((str(path), str(error)))
                    if strict:
                        raise AnanError(f"{error} (--strict: nothing written)")
            order = np.asarray(batch["index"])
            if len(order) and order[0] != seen:
                raise AnanError(f"rows came back out of order at {seen}: please report this")
            seen += len(order)
            writer.write(batch)
        if seen != expected:
            raise AnanError(f"{expected - seen} images have no row: please report this")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return PredictSummary(seen, failed, output, 0.0)
