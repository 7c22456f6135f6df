"""The four ANAN parameters and the spec's options, validated in one place.

Example:
    >>> p = AnanParams(k=4, mu=2, a=1.05, b=0.30)
    >>> p.rule, p.counter, p.signal, p.reduce, p.idle
    ('multiplicative', 'absorbing', 'pre', 'mean', 0.0)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Literal

from anan_onnx.errors import AnanError

__all__ = ["AnanParams", "COUNTERS", "REDUCES", "RULES", "SIGNALS"]

Counter = Literal["absorbing", "clamp"]
Rule = Literal["multiplicative", "additive"]
Signal = Literal["pre", "post"]
Reduce = Literal["mean", "max", "majority"]

COUNTERS: tuple[str, ...] = ("absorbing", "clamp")
RULES: tuple[str, ...] = ("multiplicative", "additive")
SIGNALS: tuple[str, ...] = ("pre", "post")
REDUCES: tuple[str, ...] = ("mean", "max", "majority")


@dataclasses.dataclass(frozen=True)
class AnanParams:
    """ANAN parameters (spec: ``ANAN_SPEC.md``).

    The defaults of k, μ, a, b are the paper's best configuration for Cats&Dogs (Table 2);
    the options default to the spec's resolutions of the paper's ambiguities.

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

    k: int = 4
    mu: int = 2
    a: float = 1.05
    b: float = 0.30
    idle: float = 0.0
    counter: Counter = "absorbing"
    rule: Rule = "multiplicative"
    signal: Signal = "pre"
    reduce: Reduce = "mean"

    def __post_init__(self) -> None:
        for name in ("k", "mu"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        for name in ("a", "b"):
            object.__setattr__(self, name, _finite(name, getattr(self, name), minimum=0.0))
        object.__setattr__(self, "idle", _finite("idle", self.idle))
        _choice("counter", self.counter, COUNTERS)
        _choice("rule", self.rule, RULES)
        _choice("signal", self.signal, SIGNALS)
        _choice("reduce", self.reduce, REDUCES)
        if self.mu > self.k:
            warnings.warn(
                f"mu={self.mu} > k={self.k}: a counter cannot reach ±mu in k steps, so the "
                "astrocytes never trigger and the model equals the base CNN",
                stacklevel=3,
            )

    def as_dict(self) -> dict[str, object]:
        """The parameters as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> AnanParams:
        """Rebuilds parameters from string metadata (``anan.k`` = ``'4'`` ...)."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, object] = {}
        for name in fields:
            if name not in values:
                continue
            raw = values[name]
            kwargs[name] = (
                _parse_number(name, raw) if name in ("k", "mu", "a", "b", "idle") else raw
            )
        return cls(**kwargs)  # type: ignore[arg-type]

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``k=4 mu=2 a=1.05 b=0.3 (multiplicative...)``."""
        return (
            f"k={self.k} mu={self.mu} a={self.a:g} b={self.b:g} idle={self.idle:g} "
            f"rule={self.rule} counter={self.counter} signal={self.signal} reduce={self.reduce}"
        )


def _parse_number(name: str, raw: str) -> float | int:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise AnanError(f"{name} must be a number, got {raw!r}: pass e.g. --{name} 2") from None
    if name in ("k", "mu") and value.is_integer():
        return int(value)
    return value


def _positive_int(name: str, value: object) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)
    if not ok or int(value) < 1:  # type: ignore[call-overload]
        raise AnanError(
            f"{name} must be a positive integer, got {value!r}: pass --{name} 1 or more"
        )
    return int(value)  # type: ignore[call-overload]


def _finite(name: str, value: object, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AnanError(f"{name} must be a number, got {value!r}: pass e.g. --{name} 0.3")
    value = float(value)
    if not math.isfinite(value):
        raise AnanError(f"{name} must be finite, got {value}: pass a finite number")
    if minimum is not None and value < minimum:
        raise AnanError(f"{name} must be >= {minimum:g}, got {value:g}: pass a non-negative value")
    return value


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise AnanError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
