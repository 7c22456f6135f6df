"""The ANAN parameters and the spec's options: the one place that states them.

Each field of :class:`AnanParams` carries, besides its default, a :class:`Param` (in the
field's metadata) with its range or choices, its help text, its metadata key, its axis of
the tune grid and the name of its graph input in a tunable export. Everything else that
lists the parameters reads them from :data:`PARAMS`: the validation here, the metadata keys
(:data:`anan_onnx.metadata.PARAM_KEYS`), the tune grid (``evaluation/tune.py`` ``Grid``,
``evaluation/fastgrid.py`` ``GridPoint``), the tunable graph inputs
(``rewrite/graph.py`` ``PARAM_INPUTS``), the CLI arguments of ``convert``, ``tune`` and
``evaluate``, and ``evaluate``'s params files. Adding a parameter means adding a field here
(and, of course, teaching the rewrite, the reference and the fast grid what it does).

Example:
    >>> p = AnanParams(k=4, mu=2, a=1.05, b=0.30)
    >>> p.rule, p.counter, p.signal, p.reduce, p.idle
    ('multiplicative', 'absorbing', 'pre', 'mean', 0.0)
    >>> [q.name for q in PARAMS if q.graph_input]
    ['k', 'mu', 'a', 'b', 'idle']
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Any, Literal

from anan_onnx import choices as _choices
from anan_onnx._public import public
from anan_onnx.errors import AnanError
from anan_onnx.limits import positive_int

__all__ = [
    "COUNTERS",
    "K_MAX",
    "PARAMS",
    "REDUCES",
    "RULES",
    "SIGNALS",
    "AnanParams",
    "Param",
    "check_steps",
    "param",
]

#: Largest k (and mu, and a tunable model's k_max). The paper searches k = 4-8. The ANAN
#: graph unrolls k steps (3 nodes a step, 14 in a tunable model: k = 1000 converts in about
#: 4 s to a 0.3 MB graph, while k = 10^6 needs 12 GB and aborts), the literal reference
#: runs the base model k + 1 times per image, and any a >= 1.1 overflows float32 near
#: k = 930 anyway. docs/limits.md.
K_MAX = 1000


def check_steps(name: str, value: int) -> int:
    """Refuses a step count above :data:`K_MAX` with the reason."""
    if value > K_MAX:
        raise AnanError(
            f"{name} = {value} is too large: at most {K_MAX} steps are unrolled (the graph "
            f"and the reference grow with each step; the paper uses 4-8): pass --{name} "
            f"{K_MAX} or less"
        )
    return value


Counter = Literal["absorbing", "clamp"]
Rule = Literal["multiplicative", "additive"]
Signal = Literal["pre", "post"]
Reduce = Literal["mean", "max", "majority"]

COUNTERS: tuple[str, ...] = _choices.Counter.ALL
RULES: tuple[str, ...] = _choices.Rule.ALL
SIGNALS: tuple[str, ...] = _choices.Signal.ALL
REDUCES: tuple[str, ...] = _choices.Reduce.ALL

_META = "anan"  # the key of a Param in a dataclass field's metadata


@dataclasses.dataclass(frozen=True)
class Param:
    """What anan-onnx states about one parameter, beside its default.

    Attributes:
        name: the field name (also the CLI option ``--name`` of ``convert``).
        default: the field's default.
        help: one line for ``--help``, without the default.
        grid: the paper's tune grid for this axis (numbers), or the options searched by
            default.
        grid_help: how that default grid reads on the command line (``4:8``).
        grid_axis: the field of the tune ``Grid`` (and the ``tune``/``evaluate`` option)
            that lists its values; options take the plural (``rules``).
        minimum: numbers: the smallest allowed value (None: any finite number); integers
            are always >= 1.
        choices: options: the allowed values.
        graph_input: the float32 scalar input of a tunable export (None: fixed in the graph).
        required: must appear in a params file (``evaluate --params``).
        key: the ``anan.<key>`` metadata key (default: the name).
    """

    name: str
    default: Any
    help: str
    grid: tuple[Any, ...]
    grid_help: str
    grid_axis: str = ""
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    graph_input: str | None = None
    required: bool = False
    key: str = ""

    @property
    def kind(self) -> type:
        """``int``, ``float`` or ``str`` (an option)."""
        return type(self.default)

    @property
    def is_option(self) -> bool:
        return bool(self.choices)

    @property
    def default_text(self) -> str:
        """The default as ``--help`` shows it (``0.3``, ``absorbing``)."""
        return _text(self.default)

    @property
    def metadata_key(self) -> str:
        return self.key or self.name

    @property
    def axis(self) -> str:
        return self.grid_axis or self.name

    def check(self, value: object) -> Any:
        """``value`` validated and converted (int, float or str), or an AnanError."""
        if self.is_option:
            if value not in self.choices:
                raise AnanError(
                    f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}"
                )
            return value
        if self.kind is int:  # k and mu: step counts
            return check_steps(self.name, positive_int(self.name, value))
        return _finite(self.name, value, self.minimum)

    def parse(self, raw: str) -> Any:
        """A value from its string form (metadata, params files), not yet checked."""
        return raw if self.is_option else _parse_number(self.name, raw, self.kind)


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def param(
    default: Any,
    help: str,
    *,
    grid: tuple[Any, ...] | None = None,
    grid_help: str | None = None,
    **facts: Any,
) -> Any:
    """A dataclass field of :class:`AnanParams` with its :class:`Param` facts.

    ``grid`` defaults to the default alone, ``grid_help`` to the grid written as a list.
    """
    grid = grid if grid is not None else (default,)
    grid_help = grid_help if grid_help is not None else ",".join(_text(v) for v in grid)
    facts.update(help=help, grid=grid, grid_help=grid_help)
    return dataclasses.field(default=default, metadata={_META: facts})


@public
@dataclasses.dataclass(frozen=True)
class AnanParams:
    """ANAN parameters (explained in ``docs/algorithm.md``).

    The defaults of k, μ, a, b are the paper's best configuration for Cats&Dogs (Table 2);
    the options default to the readings of the paper's ambiguities that docs/algorithm.md
    explains. The field order is the order of the metadata keys and of the tunable graph
    inputs.

    Attributes:
        k: presentations of each image (monitoring steps), a positive integer.
        mu: trigger level μ of the activity counter, a positive integer.
        a: excitation amount (multiplier with ``rule='multiplicative'``), finite and >= 0.
        b: inhibition amount (weights scale by ``1 - b``), finite and >= 0.
        idle: z when not triggered; only used by ``rule='additive'`` (paper prints 1).
        counter: ``'absorbing'`` (held at ±μ, paper eq. 2) or ``'clamp'``.
        rule: ``'multiplicative'`` (w·a, w·(1-b)) or ``'additive'`` (Δw = |w|·z).
        signal: ``'pre'`` (conv + bias) or ``'post'`` (after the layer's activation).
        reduce: kernel activity over positions: ``'mean'``, ``'max'`` or ``'majority'``.
    """

    # fmt: off
    k: int = param(4, "presentations per image", grid=(4, 5, 6, 7, 8), grid_help="4:8",
                   graph_input="anan_k", required=True)
    mu: int = param(2, "trigger level μ", grid=(2, 3, 4), grid_help="2:4",
                    graph_input="anan_mu", required=True)
    a: float = param(1.05, "excitation amount", grid=(1.05, 1.2, 1.35, 1.5),
                     grid_help="1.05:1.5:0.15", minimum=0.0, graph_input="anan_a", required=True)
    b: float = param(0.30, "inhibition amount", grid=(0.05, 0.2, 0.35, 0.5),
                     grid_help="0.05:0.5:0.15", minimum=0.0, graph_input="anan_b", required=True)
    idle: float = param(0.0, "z when not triggered, additive rule only; the paper prints 1",
                        graph_input="anan_idle")
    counter: Counter = param(_choices.Counter.ABSORBING, "activity counter",
                             choices=COUNTERS, grid_axis="counters")
    rule: Rule = param(_choices.Rule.MULTIPLICATIVE, "weight update rule",
                       choices=RULES, grid_axis="rules")
    signal: Signal = param(_choices.Signal.PRE,
                           "kernel response before (pre) or after (post) the activation",
                           choices=SIGNALS, grid_axis="signals")
    reduce: Reduce = param(_choices.Reduce.MEAN, "kernel activity over positions",
                           choices=REDUCES, grid_axis="reduces")
    # fmt: on

    def __post_init__(self) -> None:
        for p in PARAMS:
            object.__setattr__(self, p.name, p.check(getattr(self, p.name)))
        if self.mu > self.k:
            warnings.warn(
                f"mu={self.mu} > k={self.k}: a counter cannot reach ±mu in k steps, so the "
                "astrocytes never trigger and the model equals the base CNN",
                stacklevel=3,
            )

    def as_dict(self) -> dict[str, object]:
        """The parameters as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)

    def to_metadata(self) -> dict[str, object]:
        """The parameters by metadata key (``k`` ... without the ``anan.`` prefix)."""
        return {p.metadata_key: getattr(self, p.name) for p in PARAMS}

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> AnanParams:
        """Rebuilds parameters from string metadata (``anan.k`` = ``'4'`` ...)."""
        kwargs = {
            p.name: p.parse(values[p.metadata_key]) for p in PARAMS if p.metadata_key in values
        }
        return cls(**kwargs)

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``k=4 mu=2 a=1.05 b=0.3 (multiplicative...)``."""
        return (
            f"k={self.k} mu={self.mu} a={self.a:g} b={self.b:g} idle={self.idle:g} "
            f"rule={self.rule} counter={self.counter} signal={self.signal} reduce={self.reduce}"
        )


def _param_of(field: dataclasses.Field) -> Param:  # type: ignore[type-arg]
    return Param(name=field.name, default=field.default, **field.metadata[_META])


#: Every parameter, in field order: the source of every list of them.
PARAMS: tuple[Param, ...] = tuple(_param_of(f) for f in dataclasses.fields(AnanParams))


def _parse_number(name: str, raw: str, kind: type) -> float | int:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise AnanError(f"{name} must be a number, got {raw!r}: pass e.g. --{name} 2") from None
    if kind is int and value.is_integer():
        return int(value)
    return value


def _finite(name: str, value: object, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AnanError(f"{name} must be a number, got {value!r}: pass e.g. --{name} 0.3")
    value = float(value)
    if not math.isfinite(value):
        raise AnanError(f"{name} must be finite, got {value}: pass a finite number")
    if minimum is not None and value < minimum:
        raise AnanError(f"{name} must be >= {minimum:g}, got {value:g}: pass a non-negative value")
    return value
