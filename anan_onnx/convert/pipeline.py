"""Conversion: a base CNN (Keras or ONNX) in, a validated ANAN ONNX model out.

Example:
    >>> result = convert_file("models/catsdogs_cnn.keras", "out/model.anan.onnx",
    ...                       AnanParams(k=4, mu=2, a=1.05, b=0.30))   # doctest: +SKIP
    >>> result.target_layer                                             # doctest: +SKIP
    'sequential_1/conv2d_1/convolution'
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from anan_onnx import limits
from anan_onnx import metadata as _metadata
from anan_onnx._public import public
from anan_onnx._version import __version__
from anan_onnx.convert.batch_axis import free_fixed_batch
from anan_onnx.convert.classes import check_classes, recorded_classes
from anan_onnx.convert.keras_export import export_with_tf2onnx
from anan_onnx.convert.keras_layers import KERAS_BEFORE, KERAS_CONVS
from anan_onnx.convert.limits import check_graph_size, check_target_gains
from anan_onnx.convert.normalise import normalise_base, normalise_base_layers
from anan_onnx.convert.preprocessing import PreprocessRequest, resolve
from anan_onnx.errors import AnanError, first_line
from anan_onnx.install_hint import install_hint
from anan_onnx.model_io import (
    check_keras_archive,
    check_output_path,
    load_onnx,
    model_kind,
    rename_dim,
    save_all_atomic,
    save_atomic,
    validate,
)
from anan_onnx.options import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, ConvertOptions, check_opset
from anan_onnx.params import AnanParams
from anan_onnx.rewrite.graph import steps_foldable
from anan_onnx.rewrite.layers import rewrite_layers
from anan_onnx.rewrite.target import ConvTarget
from anan_onnx.runtime.inputs import Numbers
from anan_onnx.runtime.progress import Stages
from anan_onnx.training_record import find_training_record

__all__ = [
    "ConvertOptions",
    "ConvertResult",
    "base_path",
    "convert_file",
    "convert_model",
    "keras_to_onnx",
    "input_metadata",
    "load_base",
]

#: the lowest IR version each opset needs (onnx.helper.VERSION_TABLE)
_MIN_IR = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8}


@public
@dataclasses.dataclass
class ConvertResult:
    """What a conversion produced.

    Attributes:
        anan: the ANAN model (validated, with metadata).
        base: the base model, sorted and with unique node names (the reference runs it).
        target_layer: name of the modulated Conv node (the first, with several).
        params: the parameters used.
        target_layers: every modulated Conv, in the order of modulation.
    """

    anan: onnx.ModelProto
    base: onnx.ModelProto
    target_layer: str
    params: AnanParams
    target_layers: list[str] = dataclasses.field(default_factory=list)


@public
def load_base(
    path: str | Path,
    *,
    opset: int | None = None,
    layout: str | None = None,
    scale: Numbers | None = None,
    offset: Numbers | None = None,
    preprocess: PreprocessRequest | None = None,
) -> onnx.ModelProto:
    """Loads a ``.keras``/``.h5``/``.onnx`` model as ONNX with preprocessing metadata.

    Args:
        path: the model file; its kind is read from its content, not its name.
        opset: target opset (Keras default 17; an ONNX model keeps its opset if in 13–18).
        layout, scale, offset, preprocess: override the recorded preprocessing (see
            :func:`input_metadata`).
    """
    if opset is not None:
        check_opset("opset", opset)
    kind = model_kind(path)
    if kind == "keras":
        check_keras_archive(path)
    if kind in ("keras", "h5"):
        model = export_with_tf2onnx(path, opset=opset or DEFAULT_OPSET)
    else:
        model = free_fixed_batch(_set_opset(load_onnx(path), opset))
    _name_batch_dim(model)
    meta = input_metadata(
        model,
        layout=layout,
        scale=scale,
        offset=offset,
        preprocess=preprocess,
        training=find_training_record(path),
    )
    _metadata.write_metadata(model, meta)
    return model


@public
def keras_to_onnx(
    source: str | Path,
    output: str | Path | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    scale: Numbers | None = None,
    offset: Numbers | None = None,
    preprocess: PreprocessRequest | None = None,
) -> onnx.ModelProto:
    """Exports a Keras model to a base ONNX model with preprocessing metadata.

    Args:
        source: ``.keras`` or ``.h5`` file.
        output: if given, the ``.onnx`` path to write (atomically; never the source).
        opset: ONNX opset, :data:`~anan_onnx.options.MIN_OPSET` to
            :data:`~anan_onnx.options.MAX_OPSET`.
        scale, offset, preprocess: the preprocessing the model expects (default: read
            from the model, else assumed; see :func:`input_metadata`).

    Example:
        >>> keras_to_onnx("models/catsdogs_cnn.keras", "out/base.onnx")  # doctest: +SKIP
    """
    if output is not None:
        check_output_path(source, output)
    model = load_base(source, opset=opset, scale=scale, offset=offset, preprocess=preprocess)
    if output is not None:
        save_atomic(model, output)
    return model


def input_metadata(
    model: onnx.ModelProto,
    *,
    layout: str | None = None,
    scale: Numbers | None = None,
    offset: Numbers | None = None,
    preprocess: PreprocessRequest | None = None,
    training: Mapping[str, Any] | None = None,
) -> dict[str, object]:
    """Preprocessing keys: layout (NHWC/NCHW), height, width, channels, scale, offset,
    channel_order, resize, aspect, and where each came from (``preprocess_from``).

    Explicit arguments win (``preprocess``, or the shorthand ``layout``/``scale``/
    ``offset``), then values an anan-onnx model records, then its ``training`` record's,
    then what the model itself says (its input shape; its own leading scaling), then
    assumptions (the keras.applications convention of its name, else 1/255):
    :func:`anan_onnx.convert.preprocessing.resolve`.
    """
    request = preprocess or PreprocessRequest()
    if layout is not None or scale is not None or offset is not None:
        request = dataclasses.replace(
            request,
            layout=layout if layout is not None else request.layout,
            scale=scale if scale is not None else request.scale,
            offset=offset if offset is not None else request.offset,
        )
    return resolve(model, request, training).metadata()


@public
def convert_model(
    base: onnx.ModelProto,
    params: AnanParams,
    options: ConvertOptions | None = None,
    *,
    extra_metadata: dict[str, object] | None = None,
    **fields: Any,
) -> ConvertResult:
    """Rewrites a base ONNX model into an ANAN model, in memory, validated.

    The base model is normalised first (:func:`~anan_onnx.convert.normalise.normalise_base`:
    topological order, unique node names) and that normalised base is returned too, so the
    literal reference can find the same layer.

    Args:
        base: the base CNN.
        params: ANAN parameters.
        options: the graph options (:class:`~anan_onnx.options.ConvertOptions`: layer,
            tunable, k_max, batch, scaling, fold_steps; opset and simplify belong to
            :func:`convert_file` and are not used here).
        extra_metadata: more ``anan.*`` keys to record.
        fields: options given one by one (``batch=1``): they replace those of ``options``.
    """
    opts = dataclasses.replace(options or ConvertOptions(), **fields)
    layer, tunable, k_max, batch = opts.layer, opts.tunable, opts.k_max, opts.batch
    scaling, fold_steps = opts.scaling, opts.fold_steps
    check_graph_size(base, k_max)
    model, targets = _normalised(base, params, layer, opts.layers)
    target = targets[0]
    for each in targets:
        check_target_gains(base, each, params, tunable=tunable, k_max=k_max)
    normalised_base = ir.to_proto(model)
    symbol = _fix_batch(model.graph, batch) if batch is not None else None
    # None (the default): fold wherever it is exact; True: asked for, so say where it is not
    folded = fold_steps is not False and steps_foldable(params, tunable)
    if fold_steps is True and not folded:
        warnings.warn(
            "fold_steps ignored: the steps fold only under the absorbing counter (additive "
            "rule: with idle 0) in a non-tunable model; the k steps stay unrolled",
            stacklevel=2,
        )
    rewrite_layers(
        model,
        targets,
        params,
        tunable=tunable,
        k_max=k_max,
        scaling=scaling,
        fold_steps=folded,
    )
    RemoveUnusedNodesPass()(model)
    anan = ir.to_proto(model)
    if symbol is not None and batch is not None:  # the shape hints follow the fixed batch
        rename_dim(anan, symbol, batch)
    anan.producer_name, anan.producer_version = "anan-onnx", _tool_version()
    meta = dict(
        params.to_metadata(),
        format=_metadata.FORMAT,
        tool_version=_tool_version(),
        target_layer=target.name,
        target_keras_layer=target.keras_layer or "",
        target_reason=target.reason,
        tunable=int(tunable),
        k_max=k_max or params.k,
        batch=batch or "dynamic",
        scaling=scaling,
        steps="folded" if folded else "unrolled",
    )
    if len(targets) > 1:  # a single-layer model's metadata stays as it was
        meta["target_layers"] = json.dumps([t.name for t in targets])
    meta.update(extra_metadata or {})
    # the base model keeps the Keras facts
    _drop_metadata(anan, (KERAS_CONVS, KERAS_BEFORE, "keras_name"))
    _metadata.write_metadata(anan, meta)
    validate(anan)
    return ConvertResult(anan, normalised_base, target.name, params, [t.name for t in targets])


def _normalised(
    base: onnx.ModelProto, params: AnanParams, layer: str | None, layers: str | None
) -> tuple[ir.Model, list[ConvTarget]]:
    """The normalised base and its targets: ``layer`` (one) or ``layers`` (several)."""
    if layers is None:
        model, target = normalise_base(base, params, layer)
        return model, [target]
    if layer is not None:
        raise AnanError("--layer and --layers both given: pass one of them")
    return normalise_base_layers(base, params, layers)


@public
def convert_file(
    source: str | Path,
    output: str | Path,
    params: AnanParams,
    options: ConvertOptions | None = None,
    *,
    layout: str | None = None,
    scale: Numbers | None = None,
    offset: Numbers | None = None,
    preprocess: PreprocessRequest | None = None,
    base_output: str | Path | None = None,
    classes: Sequence[str] | None = None,
    progress: bool | None = None,
    check: Callable[[str, str], None] | None = None,
    **fields: Any,
) -> ConvertResult:
    """Converts a model file and writes the ANAN model (and the base ONNX model) atomically.

    Args:
        source: ``.keras``, ``.h5`` or ``.onnx`` base model.
        output: where to write the ANAN model; never the source.
        params: the ANAN parameters.
        options: how the graph is made (:class:`~anan_onnx.options.ConvertOptions`: target
            layer, opset, simplify, tunable, k_max, batch, scaling, fold_steps); ``fields``
            given one by one (``batch=1``) replace those of ``options``.
        layout, scale, offset: shorthands of ``preprocess``'s fields.
        base_output: where to write the base ONNX model; default: next to ``output``
            with ``.base.onnx`` instead of ``.anan.onnx``. The ANAN metadata names it.
        preprocess: the preprocessing options given (``--preprocess``, ``--mean`` ...);
            what is not given is read from the model or assumed (:func:`input_metadata`).
        classes: class names in output order, recorded as ``anan.classes`` (a JSON list)
            in both models; default: the ``classes`` of a ``training.json`` beside the
            source, if any (see :mod:`anan_onnx.convert.classes`).
        progress: one line per stage on stderr (default: when stderr is a terminal).
        check: called with the temp files of the ANAN model and of the base model, as
            written, before they replace anything (``convert --verify`` runs the literal
            reference here); if it raises, no output file is created or changed.
    """
    opts = dataclasses.replace(options or ConvertOptions(), **fields)
    stage = Stages(progress)
    source, output = Path(source), check_output_path(source, output)
    base_output = check_output_path(source, base_output or base_path(output))
    if base_output.absolute() == output.absolute():
        raise AnanError(
            f"the ANAN model and the base model would both be written to {output}: "
            "pass another --base-output"
        )
    sha = _metadata.sha256_file(source) if source.is_file() else ""
    kind = model_kind(source)
    stage("exporting the Keras model to ONNX (tf2onnx)" if kind != "onnx" else "loading")
    base = load_base(
        source, opset=opts.opset, layout=layout, scale=scale, offset=offset, preprocess=preprocess
    )
    names = list(classes) if classes is not None else recorded_classes(source)
    if names:
        _metadata.write_metadata(base, {"classes": check_classes(names, base)})
    stage("rewriting the target Conv and validating the result")
    result = convert_model(
        base,
        params,
        opts,
        extra_metadata={
            "source_sha256": sha,
            "source_file": source.name,
            "base_model": base_output.name,
        },
    )
    if opts.simplify:
        stage("simplifying (onnxslim)")
        result.anan = _simplify(result.anan)
    stage("writing")

    def check_temps(temps: list[str]) -> None:
        if check is not None:
            stage("checking the written models against the literal reference")
            check(temps[1], temps[0])

    save_all_atomic([(result.base, base_output), (result.anan, output)], check_temps)
    return result


def _drop_metadata(model: onnx.ModelProto, keys: tuple[str, ...]) -> None:
    kept = [p for p in model.metadata_props if p.key not in {_metadata.PREFIX + k for k in keys}]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)


def _fix_batch(graph: ir.Graph, batch: int) -> str | None:
    """Fixes the batch axis of the input and outputs; returns the batch symbol it replaced."""
    shape = list(graph.inputs[0].shape or [])
    symbol = shape[0].value if shape and isinstance(shape[0], ir.SymbolicDim) else None
    dims = shape[1:]
    per_image = 4 * math.prod(d for d in dims if isinstance(d, int) and d > 0)
    limits.batch_size(batch, per_image, f"--batch {batch}")  # every run feeds this many
    for value in [graph.inputs[0], *graph.outputs]:
        if value.shape is not None and len(value.shape) > 0:
            value.shape = ir.Shape([batch, *list(value.shape)[1:]])
    return symbol


def _name_batch_dim(model: onnx.ModelProto) -> None:
    """Calls the dynamic first axis of inputs and outputs ``batch`` (tf2onnx says ``unk__35``)."""
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            if dims[0].dim_param and dims[0].dim_param != "batch":
                rename_dim(model, dims[0].dim_param, "batch")  # in the shape hints too
            dims[0].dim_param = "batch"


def base_path(output: Path) -> Path:
    """Where the base model of an ANAN model ``output`` goes: ``NAME.base.onnx`` beside it."""
    name = output.name
    stem = name[: -len(".anan.onnx")] if name.endswith(".anan.onnx") else output.stem
    return output.with_name(f"{stem}.base.onnx")


def _set_opset(model: onnx.ModelProto, opset: int | None) -> onnx.ModelProto:
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if current is None:
        raise AnanError("the model imports no standard ONNX opset: pass a standard ONNX CNN")
    target = opset or min(max(current, MIN_OPSET), MAX_OPSET)
    if opset is None and target != current:
        warnings.warn(
            f"the model has opset {current}; anan-onnx writes opsets {MIN_OPSET}-{MAX_OPSET}, "
            f"so it is converted to opset {target} (onnx's version converter); pass --opset "
            "to choose",
            UserWarning,
            stacklevel=3,
        )
    if target != current:
        try:
            model = onnx.version_converter.convert_version(model, target)
        except Exception as exc:
            hint = (
                f"pass --opset {current} to keep it"
                if MIN_OPSET <= current <= MAX_OPSET
                else f"export the model again with an opset between {MIN_OPSET} and {MAX_OPSET}"
            )
            raise AnanError(
                f"cannot convert the model from opset {current} to {target} "
                f"({first_line(exc, 150)}): {hint}"
            ) from None
    model.ir_version = max(model.ir_version, _MIN_IR[target])
    return model


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        import onnxslim
    except ImportError:
        raise AnanError(f"--simplify needs onnxslim: {install_hint('simplify')}") from None
    props = list(model.metadata_props)
    slim = onnxslim.slim(model)
    del slim.metadata_props[:]
    slim.metadata_props.extend(props)
    validate(slim, "the simplified model")
    return slim


def _tool_version() -> str:
    return __version__
