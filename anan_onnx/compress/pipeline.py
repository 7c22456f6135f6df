"""``compress``: an FP32 ANAN model (and its base) -> INT8 or FP16 models, written together.

Example:
    >>> compress_file("out/m.anan.onnx", "int8", calibration=[Path("data/")])  # doctest: +SKIP
    CompressResult(output=PosixPath('out/m.int8.anan.onnx'), ...)
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx

from anan_onnx._public import public
from anan_onnx.compress import fp16, int8
from anan_onnx.compress.calibration import Calibration, calibration_set
from anan_onnx.compress.exclusions import (
    ANAN_PREFIX,
    anan_front,
    base_front,
    boundary_tensors,
    name_nodes,
)
from anan_onnx.compress.options import MIN_CALIBRATION
from anan_onnx.errors import AnanError
from anan_onnx.limits import positive_int
from anan_onnx.metadata import is_anan, read_metadata, sha256_file, write_metadata
from anan_onnx.model_io import (
    check_output_path,
    load_onnx,
    model_kind,
    recorded_file,
    write_all_atomic,
)
from anan_onnx.runtime.agreement import MIN_AGREEMENT, Fp32Agreement, fp32_agreement
from anan_onnx.runtime.inputs import InputSpec
from anan_onnx.runtime.session import Session

__all__ = ["MODES", "CompressResult", "compress_file", "compressed_paths"]

MODES = {"int8": int8.METHOD, "fp16": fp16.METHOD}
#: operators that mark a model as already quantized
_QUANTIZED_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
}


@public
@dataclasses.dataclass
class CompressResult:
    """What ``compress`` wrote: both models, their paths and the FP32 front's size."""

    output: Path
    base_output: Path
    anan: onnx.ModelProto
    base: onnx.ModelProto
    excluded_nodes: int
    #: agreement with the FP32 ANAN model on held-back images (``None``: no images)
    agreement: Fp32Agreement | None = None
    #: FP16: tail nodes kept float32 because a weight exceeds float16's range
    wide_nodes: list[str] = dataclasses.field(default_factory=list)


def compressed_paths(source: Path, mode: str, output: Path | None) -> tuple[Path, Path]:
    """``NAME.int8.anan.onnx`` and ``NAME.int8.base.onnx`` beside ``source`` by default."""
    stem = _stem(source.name)
    output = output or source.with_name(f"{stem}.{mode}.anan.onnx")
    return output, output.with_name(f"{_stem(output.name)}.base.onnx")


@public
def compress_file(
    source: str | Path,
    mode: str,
    *,
    output: str | Path | None = None,
    base: str | Path | None = None,
    calibration: Sequence[str | Path] = (),
    calibration_size: int = 100,
    calibration_method: str = "minmax",
    check_size: int = 100,
    seed: int = 0,
    include_astrocytes: bool = False,
    min_agreement: float = MIN_AGREEMENT,
) -> CompressResult:
    """Compresses an ANAN model and its base; writes both or nothing.

    Args:
        source: the FP32 ``.anan.onnx`` model.
        mode: ``"int8"`` (needs ``calibration``) or ``"fp16"``.
        base: its FP32 base model (default: the ``base_model`` recorded next to it).
        calibration: image files or folders: INT8 calibrates on ``calibration_size`` of
            them; both modes measure agreement with the FP32 model on up to ``check_size``
            others (held back), and warn below ``min_agreement``.
        calibration_method: ``minmax``, ``entropy`` or ``percentile`` (INT8).
        include_astrocytes: compress the astrocyte subgraph too (not exact; see the docs).
    """
    if mode not in MODES:
        raise AnanError(f"unknown compression {mode!r}: use one of {', '.join(MODES)}")
    if mode == "int8":
        positive_int("--calibration-size", calibration_size)
    source = Path(source)
    model = _load_anan(source)
    meta = read_metadata(model)
    base_path = Path(base) if base else recorded_file(source, meta, "base_model", "--base")
    base_model = _load_base(base_path)
    out, base_out = compressed_paths(source, mode, Path(output) if output else None)
    check_output_path(source, out)
    check_output_path(base_path, base_out)
    name_nodes(model)
    name_nodes(base_model)
    front = anan_front(model)
    boundary = boundary_tensors(model, front)
    missing = {t for t in boundary if not _produces(base_model, t)}
    if missing:
        raise AnanError(
            f"{base_path} does not produce {sorted(missing)[0]!r}, which the ANAN model's "
            "astrocyte subgraph outputs: pass its own base model with --base"
        )
    keep = set() if include_astrocytes else front
    keep_base = base_front(base_model, boundary)
    facts: dict[str, object] = {"compression": MODES[mode]}
    cal = None
    if calibration:
        size = calibration_size if mode == "int8" else 0
        data = [Path(c) for c in calibration]
        cal = calibration_set(data, _input_spec(meta, source), size, seed, check_size)
    wide: list[str] = []
    if mode == "int8":
        if cal is None:
            raise AnanError(
                "--int8 needs --calibration DATA: a folder of images the model will see"
            )
        q_anan, q_base = int8.quantize_pair(
            model, base_model, cal.batch, keep, keep_base, calibration_method
        )
        facts.update(_calibration_facts(cal, calibration, seed, calibration_method))
    else:
        (q_anan, wide), (q_base, _) = fp16.to_fp16(model, keep), fp16.to_fp16(base_model, keep_base)
    agreement = _check_agreement(q_anan, model, cal, min_agreement)
    if agreement is not None:
        facts.update(fp32_agreement=f"{agreement.agreeing}/{agreement.images}")
    facts["astrocytes"] = "compressed" if include_astrocytes else "fp32"
    _finish(q_anan, meta, facts, len(keep), source, base_out.name)
    _finish(q_base, read_metadata(base_model), facts, len(keep_base), base_path, None)
    write_all_atomic([(q_anan.SerializeToString(), out), (q_base.SerializeToString(), base_out)])
    return CompressResult(out, base_out, q_anan, q_base, len(keep), agreement, wide)


def _calibration_facts(
    cal: Calibration, calibration: Sequence[str | Path], seed: int, method: str
) -> dict[str, object]:
    """The metadata that identifies an INT8 calibration; warns when it is too small."""
    if len(cal.files) < MIN_CALIBRATION:
        warnings.warn(
            f"calibrating on {len(cal.files)} image(s) only: ranges measured on so few images "
            f"rarely fit the data; pass {MIN_CALIBRATION} or more (--calibration-size, and "
            "more images in --calibration)",
            stacklevel=3,
        )
    return dict(
        calibration_size=len(cal.files),
        calibration_seed=seed,
        calibration_sha256=cal.sha256,
        calibration_source=",".join(Path(c).name for c in calibration),
        calibration_method=method,
    )


def _check_agreement(
    compressed: onnx.ModelProto,
    fp32: onnx.ModelProto,
    cal: Calibration | None,
    threshold: float,
) -> Fp32Agreement | None:
    """Agreement with the FP32 model on the held-back images; warns below ``threshold``."""
    if cal is None:
        return None
    if not len(cal.check):
        warnings.warn(
            "agreement with the FP32 model not measured: every image was drawn for "
            "calibration; pass more images than --calibration-size",
            stacklevel=3,
        )
        return None
    agreement = fp32_agreement(Session(compressed), Session(fp32), cal.check)
    if not agreement.meets(threshold):
        warnings.warn(
            f"only {agreement.agreeing}/{agreement.images} held-back images "
            f"({agreement.agreement:.1%}) get the FP32 model's class, below {threshold:.1%}: "
            "calibrate on more images or another --calibration-method, or use --fp16",
            stacklevel=3,
        )
    return agreement


def _finish(
    model: onnx.ModelProto,
    meta: dict[str, str],
    facts: dict[str, object],
    excluded: int,
    source: Path,
    base_name: str | None,
) -> None:
    """Restores the source's metadata (the tools may drop it) and records the compression."""
    values: dict[str, object] = dict(meta)
    values.update(facts)
    values.update(excluded_nodes=excluded, fp32_model=source.name, fp32_sha256=sha256_file(source))
    if base_name is not None:
        values["base_model"] = base_name
    write_metadata(model, values)


def _load_anan(source: Path) -> onnx.ModelProto:
    kind = model_kind(source)
    if kind != "onnx":
        raise AnanError(
            f"{source} is a Keras file: convert it first (anan-onnx convert {source.name} "
            "-o M.anan.onnx), then compress M.anan.onnx"
        )
    model = load_onnx(source)
    meta = read_metadata(model)
    if "compression" in meta or any(n.op_type in _QUANTIZED_OPS for n in model.graph.node):
        raise AnanError(
            f"{source} is already compressed ({meta.get('compression', 'quantized ops')}): "
            "compress the FP32 .anan.onnx model instead"
        )
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        raise AnanError(f"{source} already holds float16 weights: pass the FP32 ANAN model")
    if not is_anan(meta) or not any(n.name.startswith(ANAN_PREFIX) for n in model.graph.node):
        raise AnanError(
            f"{source} has no ANAN astrocyte subgraph: convert it first with anan-onnx convert "
            "and compress the .anan.onnx it writes"
        )
    return model


def _load_base(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise AnanError(f"base model {path} not found: pass --base with the FP32 base model")
    base = load_onnx(path)
    if is_anan(read_metadata(base)):
        raise AnanError(f"{path} is an ANAN model, not a base model: pass --base BASE.onnx")
    if "compression" in read_metadata(base):
        raise AnanError(f"{path} is already compressed: pass the FP32 base model with --base")
    return base


def _input_spec(meta: dict[str, str], source: Path) -> InputSpec:
    if "height" not in meta:
        raise AnanError(
            f"{source} records no input size, so calibration images cannot be prepared: "
            "convert with --layout/--scale recorded, or use --fp16"
        )
    return InputSpec.from_metadata(meta)


def _produces(model: onnx.ModelProto, tensor: str) -> bool:
    return any(tensor in n.output for n in model.graph.node)


def _stem(name: str) -> str:
    for suffix in (".anan.onnx", ".base.onnx", ".onnx"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem
