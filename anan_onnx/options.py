"""The options of ``convert``, ``tune`` and ``evaluate`` as data: the one place that states them.

Each field of :class:`ConvertOptions`, :class:`SplitOptions` and :class:`RunOptions` carries
its default, its validation and its help text (an :class:`Option` in the field's metadata),
as :mod:`anan_onnx.params` does for the ANAN parameters. The Python API takes these objects
(``convert_file(..., options=ConvertOptions(batch=1))``, ``tune(..., split=SplitOptions(seed=1),
run=RunOptions(threads=2))``) and the command line's arguments are generated from them
(:func:`anan_onnx.cli.arg_types.add_options`): a flag, its default and its help exist once.
A bad value is refused when the object is made, in one line (:class:`~anan_onnx.errors.AnanError`).

Example:
    >>> SplitOptions().val_fraction, RunOptions().batch_size, ConvertOptions().opset
    (0.15, 256, None)
    >>> try:
    ...     SplitOptions(val_fraction=1.5)
    ... except AnanError as exc:
    ...     print(exc)
    val_fraction must be a number in [0, 1), got 1.5: pass e.g. 0.15
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections.abc import Callable, Sequence
from typing import Any

from anan_onnx import limits
from anan_onnx._public import public
from anan_onnx.choices import Scaling
from anan_onnx.errors import AnanError
from anan_onnx.params import PARAMS, check_steps

__all__ = [
    "BATCH_ROWS",
    "DEFAULT_OPSET",
    "LAYERS_ALL",
    "LAYERS_FIRST",
    "MAX_OPSET",
    "MIN_OPSET",
    "ConvertOptions",
    "Option",
    "RunOptions",
    "SplitOptions",
    "TUNE_ON",
    "check_layers",
    "check_opset",
    "check_tune_on",
    "options_of",
]

#: The opset a Keras model is exported to (an ONNX model keeps its own, if in range).
DEFAULT_OPSET = 17
#: The opsets anan-onnx writes.
MIN_OPSET, MAX_OPSET = 13, 18
#: Rows (images) per run of the network's rest in tune and evaluate.
BATCH_ROWS = 256
#: ``--layers`` choices besides a comma list of names: every Conv, the first N Convs.
LAYERS_ALL, LAYERS_FIRST = "all", "first:"
#: The splits parameters may be tuned on, the default first (test warns: optimistic).
TUNE_ON: tuple[str, ...] = ("val", "test")

_META = "option"  # the key of an Option in a dataclass field's metadata


@dataclasses.dataclass(frozen=True)
class Option:
    """What anan-onnx states about one option, beside its default.

    Attributes:
        name: the field name; the CLI flag is ``--name`` with ``-`` for ``_``.
        default: the field's default.
        help: one line for ``--help``, without the default.
        check: validates and converts a value (``check(name, value)``), raising AnanError.
        kind: the type of a value on the command line (``int``, ``float``, ``str``, ``bool``
            for a switch); ``parse`` turns the text into a value instead, where given.
        choices: the allowed values, if it is a choice.
        metavar: how ``--help`` names the value.
        parse: turns the command line's text into the value (e.g. a comma list).
        flag: the CLI flag, where it is not ``--name`` (``--no-progress``).
    """

    name: str
    default: Any
    help: str
    check: Callable[[str, Any], Any] | None = None
    kind: type = str
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None
    flag: str = ""

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def help_text(self) -> str:
        """The help with the default, as ``--help`` shows it."""
        if self.default is None or isinstance(self.default, bool):
            return self.help
        return f"{self.help} (default {self.default})"

    def validate(self, value: Any) -> Any:
        """``value`` checked and converted; ``None`` stands for "not given" where that is
        the default."""
        if value is None and self.default is None:
            return None
        if self.choices and value not in self.choices:
            raise AnanError(
                f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}: "
                f"pass {self.cli_flag} {self.choices[0]}"
            )
        return self.check(self.name, value) if self.check else value


def option(default: Any, help: str, **facts: Any) -> Any:
    """A dataclass field with its :class:`Option` facts."""
    facts["help"] = help
    return dataclasses.field(default=default, metadata={_META: facts})


def options_of(cls: type) -> tuple[Option, ...]:
    """The :class:`Option` of each field of an options class, in field order."""
    return tuple(
        Option(name=f.name, default=f.default, **f.metadata[_META]) for f in dataclasses.fields(cls)
    )


class _Validated:
    """Checks every field when made (frozen dataclasses: converted values are set back)."""

    def __post_init__(self) -> None:
        for opt in options_of(type(self)):
            object.__setattr__(self, opt.name, opt.validate(getattr(self, opt.name)))


# --- checks ------------------------------------------------------------------------------


def _fraction(name: str, value: object) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not (0 <= float(value) < 1):  # type: ignore[arg-type]
        raise AnanError(f"{name} must be a number in [0, 1), got {value!r}: pass e.g. 0.15")
    return float(value)  # type: ignore[arg-type]


def _seed(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise AnanError(f"{name} must be a non-negative integer, got {value!r}: pass e.g. 0")
    return int(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise AnanError(f"{name} must be True or False, got {value!r}")
    return value


def _maybe_flag(name: str, value: object) -> bool | None:
    return None if value is None else _flag(name, value)


def _steps(name: str, value: object) -> int:
    return check_steps(name, limits.positive_int(name, value))


def _batch(name: str, value: object) -> int:
    return limits.BATCH_SIZE.check(limits.positive_int(name, value), f"{name} {value}")


def _threads(name: str, value: object) -> int:
    return limits.thread_count(value)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise AnanError(f"{name} must be a non-empty name, got {value!r}")
    return value


def check_layers(name: str, value: object) -> str:
    """A ``--layers`` choice: ``all``, ``first:N`` or Conv names separated by commas."""
    text = _text(name, value).strip()
    if text.startswith(LAYERS_FIRST):
        count = text[len(LAYERS_FIRST) :]
        if not re.fullmatch(r"[0-9]+", count) or int(count) < 1:  # not Unicode digits: ²
            raise AnanError(f"{name} {text!r}: first:N needs a whole N >= 1, e.g. first:3")
    elif not [p for p in text.split(",") if p.strip()]:
        raise AnanError(f"{name} is empty: pass all, first:N or Conv names separated by commas")
    return text


def check_opset(name: str, value: object) -> int:
    """An opset between :data:`MIN_OPSET` and :data:`MAX_OPSET`, or a one-line refusal."""
    opset = limits.positive_int(name, value)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise AnanError(
            f"opset {opset} is not supported: pass --opset between {MIN_OPSET} and {MAX_OPSET}"
        )
    return opset


def check_tune_on(tune_on: str) -> str:
    """``tune_on`` if it names a split of :data:`TUNE_ON`, else a one-line refusal."""
    if tune_on not in TUNE_ON:
        raise AnanError(
            f"tune_on must be one of {', '.join(TUNE_ON)}, got {tune_on!r}: pass --tune-on val"
        )
    return tune_on


def _classes(name: str, value: object) -> tuple[int | str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise AnanError(
            f"{name} must be a non-empty list of class names or indices, got {value!r}: "
            "pass e.g. --positive 1"
        )
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, numbers.Integral)):
            raise AnanError(f"{name}: {item!r} is neither a class name nor an index")
    return tuple(int(v) if isinstance(v, numbers.Integral) else v for v in value)


def _class_list(text: str) -> list[int | str]:
    """``--positive``'s comma list: digits are indices, anything else names."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise AnanError("--positive is empty: pass class names or indices, e.g. --positive 1")
    return [int(t) if t.isdigit() else t for t in items]


# --- the options -----------------------------------------------------------------------------

_GRAPH_INPUTS = [q for q in PARAMS if q.graph_input]


@public
@dataclasses.dataclass(frozen=True)
class ConvertOptions(_Validated):
    """How a base CNN becomes an ANAN graph (``convert``; ``convert_file``, ``convert_model``).

    Attributes:
        layer: the target Conv: ONNX node or Keras layer name (default: the first Conv).
        layers: several target Convs, modulated one after the other with the same
            parameters: ``all``, ``first:N`` or names separated by commas (instead of
            ``layer``; see :mod:`anan_onnx.rewrite.layers`).
        opset: ONNX opset 13-18; default :data:`DEFAULT_OPSET` for a Keras model, the
            model's own for an ONNX model (moved into 13-18 if outside).
        simplify: run onnxslim on the result (validated again afterwards).
        tunable: parameters as graph inputs (``anan_k``, ``anan_mu``, ...).
        k_max: unrolled steps of a tunable model (default: ``k``).
        batch: fix the batch size (input, outputs and shape hints), for engines and
            exports that need a static shape; the graph is otherwise the dynamic one, and
            no faster. Default: dynamic batch.
        scaling: ``blocked`` applies the final gains in onnxruntime's blocked NCHWc layout,
            fastest on x86 CPUs at small batches; ``broadcast`` uses plain broadcast ops, for
            ARM CPUs, GPUs and other runtimes; ``scan`` runs the modulated stage image by
            image (a ``Scan`` over the batch) so its maps stay in the CPU's cache: fastest at
            batch 16 and more, slower at batch 1 (docs/performance.md). Same outputs.
        fold_steps: the final gains at once instead of the k unrolled steps. ``None`` (the
            default): wherever that is exact (absorbing counter; additive rule only with
            idle 0; not tunable); ``True``: the same, with a warning where it is not exact;
            ``False``: the k steps unrolled, one node group per step (as the spec reads).
    """

    # fmt: off
    layer: str | None = option(
        None, "target Conv: ONNX node or Keras layer name (default: first)", check=_text)
    layers: str | None = option(
        None, "several target Convs, modulated in order with the same parameters: all, "
        "first:N or NAME,NAME (instead of --layer)", check=check_layers, metavar="LAYERS")
    opset: int | None = option(
        None, f"ONNX opset {MIN_OPSET}-{MAX_OPSET} (default {DEFAULT_OPSET} for Keras input)",
        check=check_opset, kind=int)
    simplify: bool = option(
        False, "simplify the result with onnxslim", check=_flag, kind=bool)
    tunable: bool = option(
        False, f"expose {', '.join(q.name for q in _GRAPH_INPUTS)} as graph inputs "
        f"({_GRAPH_INPUTS[0].graph_input} ...) for tuning", check=_flag, kind=bool)
    k_max: int | None = option(
        None, "unrolled steps of a --tunable model (default --k)", check=_steps, kind=int)
    batch: int | None = option(
        None, "fix the batch size, for engines that need static shapes; default: dynamic",
        check=_batch, kind=int)
    scaling: str = option(
        Scaling.BLOCKED, "final gains in onnxruntime's blocked NCHWc layout (fastest on x86 "
        "CPUs at small batches), as plain broadcast ops (ARM CPUs, GPUs, other runtimes), or "
        "image by image in a Scan (x86 CPUs at batch 16+); same outputs",
        choices=Scaling.ALL)
    fold_steps: bool | None = option(
        None, "the final gains at once instead of the k unrolled steps (the default where "
        "exact: absorbing counter, additive rule only with idle 0, not --tunable): fewer "
        "nodes, same outputs; --no-fold-steps keeps the k steps unrolled",
        check=_maybe_flag, kind=bool)
    # fmt: on


@public
@dataclasses.dataclass(frozen=True)
class SplitOptions(_Validated):
    """How a labelled image set is split into train / val / test (``tune``, ``evaluate``;
    :func:`anan_onnx.load_splits` documents each field).

    Attributes:
        val_fraction: share of the training images drawn for validation; 0 gives none.
        test_fraction: share of a folder without train/ and test/ drawn for test.
        seed: seed of the random splits and of ``max_per_class`` sampling.
        positive: binarise: these classes (names or indices) become label 1.
        max_per_class: keep at most this many images of each class.
    """

    # fmt: off
    val_fraction: float = option(
        0.15, "share of the training images drawn for validation", check=_fraction, kind=float)
    test_fraction: float = option(
        0.2, "test share of a folder without train/ and test/", check=_fraction, kind=float)
    seed: int = option(0, "seed of the random splits", check=_seed, kind=int)
    positive: Sequence[int | str] | None = option(
        None, "binarise for a binary model: these classes (names or indices, comma list) "
        "become label 1 (a multi-class model needs none: its classes are matched by name, "
        "and a subset of them is enough)", check=_classes, parse=_class_list, metavar="CLASSES")
    max_per_class: int | None = option(
        None, "keep at most N images per class", check=limits.positive_int, kind=int,
        metavar="N")
    # fmt: on


@public
@dataclasses.dataclass(frozen=True)
class RunOptions(_Validated):
    """How the image work runs (``tune``, ``evaluate``); the results do not depend on it.

    Attributes:
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
        batch_size: rows (images) per run of the network's rest.
        progress: progress bars; default: on a terminal.
    """

    # fmt: off
    threads: int | None = option(
        None, "onnxruntime intra-op threads", check=_threads, kind=int, metavar="N")
    batch_size: int = option(
        BATCH_ROWS, "rows per run of the network's rest", check=_batch, kind=int, metavar="N")
    progress: bool | None = option(
        None, "no progress bars", check=_maybe_flag, kind=bool, flag="--no-progress")
    # fmt: on
