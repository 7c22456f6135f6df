"""``export_model``: an ANAN model made ready for one deployment target, checked exact,
written all together or not at all.

Pattern (every target)::

    MODEL.anan.onnx --fix batch--> --shape inference--> --simplifier--> + anan.export_* metadata
        |                                                                   |
        |                         staging folder (hidden, in OUT_DIR):      v
        |                           MODEL.anan.onnx, MODEL.anan.json (sidecar),
        |                           [MODEL.anan.ort, MODEL.anan.required_operators_and_types.config]
        |                                                                   |
        +--- same outputs (<= 1e-5), differs from the base model where it does <-- check
                                                                            |
                                          every file renamed into OUT_DIR --+
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import onnx

from anan_onnx.errors import AnanError, first_line
from anan_onnx.export import check, engine_files, mobile, ort_files, shapes, simplify
from anan_onnx.export import raw_input as raw_input_module
from anan_onnx.export.targets import TARGETS, Target
from anan_onnx.metadata import is_anan, read_metadata, sha256_file, write_metadata
from anan_onnx.model_io import load_onnx, model_kind, recorded_file
from anan_onnx.sidecar import sidecar_path, write_sidecar

__all__ = ["ExportResult", "export_model", "output_paths"]


@dataclasses.dataclass
class ExportResult:
    """What an export wrote and found."""

    target: str
    files: list[Path]
    batch: int | None  # the exported model's fixed batch, None: dynamic
    batch_note: str
    simplifier: str
    nodes_before: int
    nodes_after: int
    exactness: list[check.ExactnessReport]
    mobile: list[mobile.EpSupport] = dataclasses.field(default_factory=list)


def export_model(
    source: str | Path,
    target: str,
    output: str | Path | None = None,
    *,
    batch: int | None = None,
    simplifier: str = "auto",
    raw_input: bool = False,
) -> ExportResult:
    """Exports the ANAN model ``source`` for ``target`` (``web``, ``mobile``, ``ort``).

    Args:
        output: a folder (default ``<stem>.<target>/`` beside the source) or the path of the
            exported ``.onnx`` file; the other files go beside it.
        batch: the batch to fix (default: 1 for mobile, the model's own otherwise).
        simplifier: ``auto``, ``onnxsim``, ``onnxslim`` or ``none``.
        raw_input: the exported model takes uint8 NHWC pixels and carries the recorded
            preprocessing (:mod:`anan_onnx.export.raw_input`).

    Raises:
        AnanError: bad input (not an ANAN model, unknown target, unwritable output), or the
            export is not exact; then no file is written.
    """
    spec = _target(target)
    source = Path(source)
    model = _load_anan(source)
    out_model = output_paths(source, spec.name, output)
    name = simplify.resolve(simplifier)
    base = _load_base(source, read_metadata(model))
    raw = raw_input_module.raw_spec(model) if raw_input else None
    exported, batch_note = _transform(model, spec, batch, name, raw_input)
    write_metadata(exported, _export_metadata(source, spec, exported, batch_note, name))
    with _staging(out_model.parent) as stage:
        staged = _write_all(exported, stage / out_model.name, spec)
        checked = [p for p in staged if p.suffix in check.CHECKED_SUFFIXES]
        fixed = shapes.batch_of(exported)
        reports = check.check_exact(model, checked, base, batch=fixed, raw=raw)
        support = mobile.mobile_support(staged[0]) if spec.mobile_summary else []
        files = _publish(staged, out_model.parent)
    return ExportResult(
        spec.name,
        files,
        fixed,
        batch_note,
        name,
        len(model.graph.node),
        len(exported.graph.node),
        reports,
        support,
    )


def output_paths(source: Path, target: str, output: str | Path | None) -> Path:
    """The exported ``.onnx`` path for ``output`` (a folder or a ``.onnx`` file).

    Raises:
        AnanError: the path is the source itself, an existing non-folder file that is not
            ``.onnx``, or in a folder that cannot be written.
    """
    stem = source.name.removesuffix(".onnx").removesuffix(".anan")
    if output is None:
        out = source.parent / f"{stem}.{target}" / source.name
    else:
        output = Path(output)
        if output.suffix == ".onnx":
            out = output
        elif output.exists() and not output.is_dir():
            raise AnanError(
                f"output {output} is a file: pass a folder, or the exported model's .onnx path"
            )
        else:
            out = output / source.name
    if out.exists() and out.resolve() == source.resolve():
        raise AnanError(f"output {out} is the input model: pass another -o folder")
    _check_writable(out.parent)
    return out


def _target(name: str) -> Target:
    if name not in TARGETS:
        raise AnanError(f"unknown export target {name!r}: pick one of {', '.join(TARGETS)}")
    return TARGETS[name]


def _load_anan(source: Path) -> onnx.ModelProto:
    if model_kind(source) in ("keras", "h5"):
        raise AnanError(
            f"{source} is a Keras model: convert it first (anan-onnx convert {source}), "
            "then export the .anan.onnx file"
        )
    model = load_onnx(source)
    if not is_anan(read_metadata(model)):
        raise AnanError(
            f"{source} is not an ANAN model (no anan.k metadata): export the .anan.onnx "
            "file written by anan-onnx convert"
        )
    return model


def _load_base(source: Path, metadata: dict[str, str]) -> onnx.ModelProto | None:
    """The base model recorded beside the source, for the modulation check (None: absent)."""
    try:
        path = recorded_file(source, metadata, "base_model", "--base")
    except AnanError:  # none recorded, or not a plain name: no check, as when absent
        return None
    return load_onnx(path) if path.is_file() else None


def _transform(
    model: onnx.ModelProto, spec: Target, batch: int | None, simplifier: str, raw: bool
) -> tuple[onnx.ModelProto, str]:
    """The exported graph (pixel input where wanted, batch fixed where wanted, simplified,
    valid) and a note on its batch."""
    exported = onnx.ModelProto()
    exported.CopyFrom(model)
    if raw:
        raw_input_module.add_raw_input(exported)
    wanted = batch if batch is not None else spec.default_batch
    if wanted is not None:
        shapes.fix_batch(exported, wanted)
        exported = shapes.infer_shapes(exported)  # the folding below needs every shape
    note = _batch_note(shapes.batch_of(model), wanted, batch is not None, spec.name)
    exported = simplify.simplify(exported, simplifier)
    try:
        onnx.checker.check_model(exported, full_check=True)
    except Exception as exc:
        raise AnanError(
            f"the exported graph failed ONNX validation ({first_line(exc)}): nothing was "
            "written; export with --simplifier none, or report this with the model"
        ) from None
    return exported, note


def _batch_note(had: int | None, wanted: int | None, asked: bool, target: str) -> str:
    """What happened to the batch axis, in words (printed and recorded)."""
    if wanted is None:
        if had is None:
            return "batch dynamic (kept; pass --batch N to fix it)"
        return f"batch {had} (kept, fixed at conversion)"
    if had is not None:
        return f"batch {wanted} (already fixed)"
    how = "--batch" if asked else f"the {target} default"
    return f"batch {wanted} (fixed by {how}; was dynamic)"


def _export_metadata(
    source: Path,
    spec: Target,
    exported: onnx.ModelProto,
    batch_note: str,
    simplifier: str,
) -> dict[str, object]:
    """The anan.export_* keys (and anan.batch where the batch is now fixed)."""
    changes = [
        batch_note,
        f"simplified by {simplifier}" if simplifier != "none" else "not simplified",
    ]
    if spec.ort:
        style = "Runtime" if spec.runtime_optimizations else "Fixed"
        changes.append(f".ort: {style} optimisation style")
    fixed = shapes.batch_of(exported)
    values: dict[str, object] = {
        "export_target": spec.name,
        "export_batch": fixed if fixed is not None else "dynamic",
        "export_simplifier": simplifier,
        "export_source_file": source.name,
        "export_source_sha256": sha256_file(source),
        "export_changes": "; ".join(changes),
    }
    if fixed is not None:
        values["batch"] = fixed  # as `convert --batch N` records it
    return values


def _write_all(model: onnx.ModelProto, onnx_path: Path, spec: Target) -> list[Path]:
    """Writes the target's files into the staging folder; the ``.onnx`` comes first."""
    onnx_path.write_bytes(model.SerializeToString())
    files = [onnx_path]
    if spec.ort:
        files += ort_files.to_ort(
            onnx_path, onnx_path.parent, runtime_style=spec.runtime_optimizations
        )
    if spec.engine == "openvino":
        files += engine_files.to_openvino_ir(onnx_path)
    if spec.engine == "litert":
        files += engine_files.to_tflite(onnx_path)
    files.append(write_sidecar(onnx_path, sidecar_path(onnx_path)))
    return files


class _staging:
    """A hidden folder inside ``out_dir`` (same file system: renames are atomic), removed
    on exit; ``out_dir`` itself is removed too on failure if this created it."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.created = not out_dir.exists()

    def __enter__(self) -> Path:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=".anan_export_", dir=self.out_dir))
        except OSError as exc:
            raise AnanError(
                f"cannot write to {self.out_dir} ({exc.strerror}): pass -o in a writable folder"
            ) from None
        return self.path

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if kind is not None and self.created:
            shutil.rmtree(self.out_dir, ignore_errors=True)


def _publish(staged: list[Path], out_dir: Path) -> list[Path]:
    """Renames every staged file into ``out_dir`` once all of them are complete."""
    for path in staged:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    finals = [out_dir / p.name for p in staged]
    for path, final in zip(staged, finals, strict=True):
        os.replace(path, final)
    return finals


def _check_writable(folder: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AnanError(f"cannot write to {folder}: pass -o in a writable folder")
