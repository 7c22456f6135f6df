"""The configurations a tuner searches: one axis per ANAN parameter.

The default grid is the paper's (Section 3.3.3): k 4–8, μ 2–4, a 1.05–1.50 and b 0.05–0.50
in steps of 0.15 (240 configurations), with the spec's default options. Axes, their
defaults and their checks come from :data:`anan_onnx.params.PARAMS`.

Example:
    >>> Grid.from_strings(k="4,5", a="1.05:1.5:0.15", rules="additive").size
    96
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

from anan_onnx._public import public
from anan_onnx.choices import Rule
from anan_onnx.errors import AnanError
from anan_onnx.evaluation.fastgrid import GridPoint
from anan_onnx.limits import GRID_CONFIGS, positive_int
from anan_onnx.params import PARAMS, AnanParams, Param

__all__ = ["NUMBERS", "PAPER_GRID", "Grid", "parse_values"]

#: grid axis (``k`` ... ``rules`` ...) -> its parameter
_AXES: dict[str, Param] = {p.axis: p for p in PARAMS}
#: the numeric parameters (k, mu, a, b, idle): the fields of a GridPoint
NUMBERS: tuple[str, ...] = tuple(p.name for p in PARAMS if not p.is_option)


def parse_values(
    name: str, text: str, *, integer: bool = False, max_values: int | None = None
) -> tuple[float, ...]:
    """Parses a grid axis: ``"4,5,6"``, a range ``"4:8"`` / ``"1.05:1.5:0.15"``, or a mix.

    A range ``start:stop[:step]`` includes ``stop`` when it lies on the grid (within 1e-9);
    the step defaults to 1. Values are rounded to 10 decimals (``1.05 + 0.15`` is ``1.2``).

    Args:
        name: the parameter (for messages), e.g. ``"a"``.
        text: the values.
        integer: the values must be integers (k, μ).
        max_values: most values the axis may have (default: the grid limit,
            :data:`anan_onnx.limits.GRID_CONFIGS`); counted before any list is built.

    Raises:
        AnanError: an item is not a number or a valid range, or too many values.

    Example:
        >>> parse_values("a", "1.05:1.5:0.15")
        (1.05, 1.2, 1.35, 1.5)
        >>> parse_values("k", "4,6:8", integer=True)
        (4, 6, 7, 8)
    """
    values: list[float] = []
    items = [t.strip() for t in str(text).split(",")]
    if not any(items):
        raise AnanError(f"--{name} is empty: pass values such as --{name} 1,2 or a range 1:3")
    for item in items:
        parts = item.split(":")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise AnanError(
                f"--{name}: {item!r} is not a number or a range start:stop:step; pass e.g. "
                f"--{name} {'4,5' if integer else '1.05,1.2'} or "
                f"--{name} {'4:8' if integer else '1.05:1.5:0.15'}"
            ) from None
        if not all(math.isfinite(v) for v in numbers) or len(numbers) > 3:
            raise AnanError(f"--{name}: {item!r} is not a finite number or start:stop:step")
        if len(numbers) == 1:
            values.append(numbers[0])
            continue
        start, stop = numbers[0], numbers[1]
        step = numbers[2] if len(numbers) == 3 else 1.0
        if step <= 0 or stop < start:
            raise AnanError(
                f"--{name}: range {item!r} needs start <= stop and a positive step, "
                f"e.g. {'4:8' if integer else '1.05:1.5:0.15'}"
            )
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        GRID_CONFIGS.check(len(values) + count, f"--{name} {text}", max_values)
        values += [start + i * step for i in range(count)]
    values = [round(v, 10) for v in values]
    if integer:
        return tuple(dict.fromkeys(positive_int(name, v) for v in values))
    return tuple(dict.fromkeys(values))


def _paper(axis: str) -> Any:
    return _AXES[axis].grid


@public
@dataclasses.dataclass(frozen=True)
class Grid:
    """The configurations to search: numeric axes and option lists.

    One axis per parameter of :data:`anan_onnx.params.PARAMS` (options in the plural), with
    its default grid and validation from there; the field order is the search order. The
    defaults are the paper's grid (Section 3.3.3) with the spec's default options. ``idle``
    is only used by the additive rule; multiplicative configurations are not repeated over it.

    Example:
        >>> Grid().size
        240
        >>> Grid(k=(4,), mu=(2,), rules=("multiplicative", "additive"), idle=(0.0, 1.0)).size
        48
    """

    k: tuple[int, ...] = _paper("k")
    mu: tuple[int, ...] = _paper("mu")
    a: tuple[float, ...] = _paper("a")
    b: tuple[float, ...] = _paper("b")
    idle: tuple[float, ...] = _paper("idle")
    rules: tuple[str, ...] = _paper("rules")
    counters: tuple[str, ...] = _paper("counters")
    signals: tuple[str, ...] = _paper("signals")
    reduces: tuple[str, ...] = _paper("reduces")

    def __post_init__(self) -> None:
        for axis in self.axes():
            values = tuple(dict.fromkeys(getattr(self, axis)))
            if not values:
                raise AnanError(f"the grid has no {axis} values: give at least one")
            p = _AXES[axis]
            if p.is_option:
                for v in values:
                    if v not in p.choices:
                        raise AnanError(
                            f"--{axis}: {v!r} is not one of {', '.join(p.choices)}: pass a "
                            "comma-separated list of them"
                        )
            # each value as AnanParams checks it (k, mu >= 1; a, b >= 0; all finite)
            values = tuple(dict.fromkeys(p.check(v) for v in values))
            object.__setattr__(self, axis, values)

    @classmethod
    def axes(cls) -> tuple[str, ...]:
        """The axes in search order: ``k``, ``mu``, ``a``, ``b``, ``idle``, ``rules``, ..."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def options(cls) -> tuple[Param, ...]:
        """The option parameters (rule, counter, ...) in search order."""
        return tuple(_AXES[axis] for axis in cls.axes() if _AXES[axis].is_option)

    @classmethod
    def from_strings(cls, max_configs: int | None = None, **texts: str | None) -> Grid:
        """A grid from command-line strings; missing axes keep the paper's values.

        Its size is checked against :data:`anan_onnx.limits.GRID_CONFIGS` (``max_configs``
        raises it) before any configuration is made.

        Example:
            >>> Grid.from_strings(k="4,5", a="1.05:1.5:0.15", rules="additive").size
            96
        """
        kwargs: dict[str, Any] = {}
        for name, text in texts.items():
            if text is None:
                continue
            p = _AXES.get(name)
            if p is None:
                raise AnanError(f"unknown grid axis {name!r}")
            if p.is_option:
                kwargs[name] = tuple(t.strip() for t in text.split(",") if t.strip())
            else:
                kwargs[name] = parse_values(
                    name, text, integer=p.kind is int, max_values=max_configs
                )
        grid = cls(**kwargs)
        GRID_CONFIGS.check(grid.size, "the grid", max_configs)
        return grid

    def option_sets(self) -> list[AnanParams]:
        """One parameter template per option combination (its numbers are the defaults)."""
        options = self.options()
        return [
            AnanParams(**{p.name: v for p, v in zip(options, values, strict=True)})
            for values in itertools.product(*(getattr(self, p.axis) for p in options))
        ]

    def points(self, rule: str = Rule.MULTIPLICATIVE) -> list[GridPoint]:
        """The numeric configurations for one rule, in grid order (k, μ, a, b, idle)."""
        axes = {name: getattr(self, name) for name in NUMBERS}
        if rule != Rule.ADDITIVE:
            axes["idle"] = self.idle[:1]
        return [
            GridPoint(**dict(zip(axes, v, strict=True))) for v in itertools.product(*axes.values())
        ]

    @property
    def size(self) -> int:
        """Number of configurations over all option combinations (counted, not listed)."""
        numbers = math.prod(len(getattr(self, name)) for name in NUMBERS if name != "idle")
        per_rule = {r: numbers * (len(self.idle) if r == Rule.ADDITIVE else 1) for r in self.rules}
        others = math.prod(len(getattr(self, p.axis)) for p in self.options() if p.name != "rule")
        return others * sum(per_rule.values())

    def as_dict(self) -> dict[str, list]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


#: The paper's grid (Section 3.3.3): 240 configurations.
PAPER_GRID = Grid()
