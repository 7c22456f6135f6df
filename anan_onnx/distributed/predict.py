"""``anan-onnx predict -o DIR``: each part of the inputs predicted and written where it runs.

Pipeline (``--engine ray``; the local engine runs the same parts in turn, in this process)::

    arguments -> DIR/_inputs/part-*.txt              # listing.build_work: streamed; URIs
                                                     #   listed by Ray tasks
      -> ray.data.from_items(part names)             # only part names travel
      -> map_batches(_RayParts, ActorPoolStrategy(min_size=1, max_size=workers))
                                                     # each actor: one onnxruntime session;
                                                     #   reads, predicts and commits whole
                                                     #   parts (parts.PartPredictor)
      -> part summaries (counts, checksum) on the driver -> DIR/manifest.json

Failures are counted, not hidden: every input has a row (a failed one with its ``error``),
failed rows are also in ``DIR/errors/``, and the caller compares the count with
``--max-failed``. A worker that cannot see an input the driver listed fails the job at once
(:class:`~anan_onnx.distributed.parts.DataNotVisible`).

Node loss: Ray restarts a lost actor elsewhere and re-runs its part; should a pass fail all
the same (an actor unavailable, a node gone with its objects), the driver starts another
pass, at most ``retries`` times, and committed parts are skipped: each part is computed at
most ``retries + 1`` times. A rerun with the same ``-o`` resumes the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx.distributed.listing import build_work
from anan_onnx.distributed.parts import (
    DEFAULT_BLOCK,
    ERRORS_DIR,
    INPUTS_DIR,
    MANIFEST,
    PartPredictor,
    PartSummary,
    list_parts,
)
from anan_onnx.errors import AnanError, first_line
from anan_onnx.install_hint import install_hint

__all__ = ["JobOptions", "RunSummary", "allowed_failures", "predict_parts"]

#: The model, copied into the output folder for the actors to read.
MODEL_COPY = "model.onnx"
#: Passes after a failed one (a lost node): each part is computed at most 1 + this often.
DEFAULT_RETRIES = 2
_SUMMARY_FIELDS = tuple(f.name for f in dataclasses.fields(PartSummary))
#: Most Ray Data blocks of part names (Ray's scheduling cost grows with the block count).
_MAX_BLOCKS = 10_000
#: A column of the actors' output: the AnanError that stops the job, or "".
_FATAL = "fatal"


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How a run is cut and spread (the CLI's ``--block-images``, ``--batch-size``, ...)."""

    block: int = DEFAULT_BLOCK
    batch_size: int = 64
    threads: int = 1
    workers: int | None = None
    retries: int = DEFAULT_RETRIES
    provider: str = "cpu"  # onnxruntime's execution provider (--provider)


@dataclasses.dataclass
class RunSummary:
    """What :func:`predict_parts` did (the figures of ``DIR/manifest.json``)."""

    images: int
    failed: int
    parts: int
    resumed: int
    first_error: str
    checksum: str
    output: Path
    seconds: float = 0.0


def allowed_failures(limit: str, images: int) -> int:
    """``--max-failed``: ``N`` images or ``P%`` of ``images`` (rounded down).

    Example:
        >>> allowed_failures("5", 1000), allowed_failures("1.5%", 1000)
        (5, 15)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(%?)\s*", limit)
    if not match or (not match[2] and "." in match[1]) or (match[2] and float(match[1]) > 100):
        raise AnanError(
            f"--max-failed {limit!r}: pass a count (e.g. 10) or a percentage up to 100 (e.g. 0.5%)"
        )
    return int(float(match[1]) * images / 100) if match[2] else int(match[1])


def predict_parts(
    model: str | Path,
    inputs: Sequence[str | os.PathLike[str]],
    out: str | Path,
    *,
    inputs_from: Sequence[str | os.PathLike[str]] = (),
    engine: str = "local",
    address: str | None = None,
    options: JobOptions = JobOptions(),
) -> RunSummary:
    """Predicts every input into the partitioned folder ``out`` (see
    :mod:`anan_onnx.distributed.parts`), resuming the parts already committed there.

    Args:
        model: ``.onnx`` model whose metadata records the preprocessing.
        inputs: files, folders, ``@list`` files, globs and URIs
            (:mod:`anan_onnx.runtime.input_paths`).
        out: the output folder (with ``--engine ray``: one every node can write).
        inputs_from: more list files.
        engine: ``local`` (this process) or ``ray``.
        address: the Ray cluster (default: a local one, stopped at the end).
        options: block size, batch size, threads, workers, retries.
    """
    from anan_onnx.metadata import read_metadata
    from anan_onnx.model_io import load_onnx
    from anan_onnx.runtime.inputs import InputSpec

    start = time.perf_counter()
    _require_packages(engine)
    out = _output_folder(out)
    proto = load_onnx(model)
    InputSpec.from_metadata(read_metadata(proto))  # refuses a model without preprocessing
    data = proto.SerializeToString()
    del proto
    created = not out.exists()
    try:
        if engine != "ray":
            build_work(out, inputs, inputs_from, options.block)
            summaries = _local(data, out, options)
        else:
            summaries = _on_ray(data, out, inputs, inputs_from, address, options)
    except BaseException:
        if created and not any(out.glob("part-*.parquet")):  # nothing worth resuming
            shutil.rmtree(out, ignore_errors=True)
        raise
    summary = _manifest(out, model, data, summaries)
    summary.seconds = time.perf_counter() - start
    return summary


def _require_packages(engine: str) -> None:
    """Ray (for ``--engine ray``) and pyarrow (for the Parquet parts), before any work."""
    if engine == "ray":
        from anan_onnx.distributed.ray_engine import require_ray

        require_ray()
    try:
        import pyarrow  # noqa: F401 - the parts are Parquet files
    except ImportError:
        raise AnanError(
            f"-o DIR writes Parquet files, which needs pyarrow: {install_hint('ray')}"
        ) from None


def _output_folder(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AnanError(f"-o {out} is a file: pass a folder (created if missing)")
    if out.is_dir() and any(out.iterdir()):
        ours = (out / MANIFEST).is_file() or (out / INPUTS_DIR).is_dir()
        if not ours:
            raise AnanError(
                f"-o {out} is a folder with other files: pass a new or empty folder, or an "
                "earlier output folder to resume it"
            )
    return out  # created by build_work, once the inputs and the cluster are there


def _local(model: bytes, out: Path, options: JobOptions) -> list[PartSummary]:
    predictor = PartPredictor(
        model,
        str(out),
        threads=options.threads,
        batch_size=options.batch_size,
        provider=options.provider,
    )
    return [predictor.predict_part(name) for name in list_parts(out)]


# --- Ray -----------------------------------------------------------------------------------


class _RayParts:
    """A Ray Data actor: part names in, part summaries out (see PartPredictor).

    The model is read from the output folder, not passed as a constructor argument: Ray
    keeps large arguments in the object store, where a lost node can take them with it, and
    then the actor cannot be restarted (ray-project/ray#53727).
    """

    def __init__(self, *, out: str, **kwargs: Any) -> None:
        model = (Path(out) / INPUTS_DIR / MODEL_COPY).read_bytes()
        self.predictor = PartPredictor(model, out, **kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = []
        for name in batch["part"]:
            try:
                row = self.predictor.predict_part(str(name)).to_row()
            except AnanError as exc:  # returned, not raised: Ray Data keeps only its text
                row = PartSummary(str(name), 0, 0, "").to_row() | {_FATAL: str(exc)}
            rows.append({_FATAL: "", **row})
        return {k: np.asarray([r[k] for r in rows]) for k in (*_SUMMARY_FIELDS, _FATAL)}


def _on_ray(
    model: bytes,
    out: Path,
    inputs: Sequence[str | os.PathLike[str]],
    inputs_from: Sequence[str | os.PathLike[str]],
    address: str | None,
    options: JobOptions,
) -> list[PartSummary]:
    from anan_onnx.distributed.ray_engine import connect, require_ray
    from anan_onnx.model_io import write_bytes_atomic

    ray = require_ray()
    started = connect(address)
    try:
        listing = ray.remote(num_cpus=0.5)

        def runner(fn: Any, calls: list[tuple[Any, ...]]) -> list[int]:
            remote = listing(fn)
            return _ray_get(ray, [remote.remote(*args) for args in calls])

        build_work(out, inputs, inputs_from, options.block, runner)
        write_bytes_atomic(model, out / INPUTS_DIR / MODEL_COPY)
        names = list_parts(out)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = max(1, options.workers or cpus // options.threads)
        return _with_retries(lambda: _pass(ray, out, names, pool, options), options.retries, out)
    finally:
        if started:
            ray.shutdown()


def _with_retries(run: Any, retries: int, out: Path) -> list[PartSummary]:
    """``run()``, again after a failure that is not an AnanError (a lost node or actor: the
    next pass skips the committed parts), at most ``retries`` more times."""
    last: Exception | None = None
    for _ in range(retries + 1):
        try:
            return list(run())
        except AnanError:
            raise
        except Exception as exc:
            last = exc
    raise AnanError(
        f"the Ray job failed {retries + 1} times, last: {first_line(last or Exception(), 200)}; "
        f"committed parts are kept in {out}: rerun the same command to resume"
    )


def _pass(
    ray: Any, out: Path, names: list[str], pool: int, options: JobOptions
) -> list[PartSummary]:
    """One pass of Ray Data over the part names; a worker's AnanError stops it."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    # a block per part (at most _MAX_BLOCKS: a retried block skips its committed parts)
    blocks = min(len(names), _MAX_BLOCKS)
    dataset = ray.data.from_items([{"part": n} for n in names], override_num_blocks=blocks)
    predicted = dataset.map_batches(
        _RayParts,
        fn_constructor_kwargs={
            "out": str(out),
            "threads": options.threads,
            "batch_size": options.batch_size,
            "provider": options.provider,
        },
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool),
        num_cpus=options.threads,
    )
    summaries: list[PartSummary] = []
    for batch in predicted.iter_batches(batch_size=None, batch_format="numpy"):
        for i in range(len(batch["name"])):
            if batch[_FATAL][i]:  # e.g. a node that does not see the data: stop now
                raise AnanError(str(batch[_FATAL][i]))
            summaries.append(_summary({k: batch[k][i] for k in _SUMMARY_FIELDS}))
    return sorted(summaries, key=lambda s: s.name)


def _ray_get(ray: Any, refs: list[Any]) -> list[int]:
    try:
        return [int(v) for v in ray.get(refs)]
    except Exception as exc:
        raise _user_error(exc) or exc from None


def _user_error(exc: BaseException) -> AnanError | None:
    """The AnanError a Ray task raised (Ray rebuilds it as the ``cause`` of its error)."""
    cause = getattr(exc, "cause", None)
    return AnanError(str(cause)) if isinstance(cause, AnanError) else None


def _summary(row: dict[str, Any]) -> PartSummary:
    return PartSummary(
        name=str(row["name"]),
        images=int(row["images"]),
        failed=int(row["failed"]),
        checksum=str(row["checksum"]),
        first_error=str(row["first_error"]),
        resumed=bool(row["resumed"]),
    )


# --- the manifest --------------------------------------------------------------------------


def _manifest(
    out: Path, model: str | Path, data: bytes, summaries: list[PartSummary]
) -> RunSummary:
    """Removes parts of an older run that this one does not have, writes manifest.json."""
    from anan_onnx.model_io import write_bytes_atomic

    names = {s.name for s in summaries}
    for folder in (out, out / ERRORS_DIR):
        for stale in folder.glob("part-*.parquet"):
            if stale.name[: -len(".parquet")] not in names:
                stale.unlink()
    overall = hashlib.sha256("".join(s.checksum for s in summaries).encode()).hexdigest()
    failed = [s for s in summaries if s.failed]
    summary = RunSummary(
        images=sum(s.images for s in summaries),
        failed=sum(s.failed for s in summaries),
        parts=len(summaries),
        resumed=sum(s.resumed for s in summaries),
        first_error=failed[0].first_error if failed else "",
        checksum=overall,
        output=out,
    )
    document = {
        "model": str(model),
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "images": summary.images,
        "failed": summary.failed,
        "checksum": overall,
        "parts": [
            {k: v for k, v in s.to_row().items() if k not in ("first_error", "resumed")}
            for s in summaries
        ],
    }
    write_bytes_atomic((json.dumps(document, indent=1) + "\n").encode(), out / MANIFEST)
    return summary
