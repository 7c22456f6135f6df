"""The values of every multiple-choice option, named once.

The values are plain strings, not :class:`enum.Enum` members: they are written as they are
into the models' metadata and read back from it, taken from the command line, and compared
with what a user passes, so a member would have to print as its value everywhere (a
``(str, Enum)`` member prints as ``Rule.ADDITIVE`` under ``str()`` on every Python, and under
``format()`` from 3.12). Code compares with these names (``params.rule == Rule.ADDITIVE``),
never with a literal string; ``ALL`` lists the values in the order ``--help`` shows them.

Example:
    >>> Rule.ADDITIVE, Rule.ALL
    ('additive', ('multiplicative', 'additive'))
"""

from __future__ import annotations

from typing import Final

__all__ = ["Counter", "Layout", "Reduce", "Rule", "Scaling", "Signal"]


class Rule:
    """How a triggered astrocyte changes the weights (spec §rule)."""

    MULTIPLICATIVE: Final = "multiplicative"  #: w·a, w·(1-b)
    ADDITIVE: Final = "additive"  #: Δw = |w|·z
    ALL: Final = (MULTIPLICATIVE, ADDITIVE)


class Counter:
    """The activity counter of each kernel."""

    ABSORBING: Final = "absorbing"  #: held at ±μ once reached (paper eq. 2)
    CLAMP: Final = "clamp"  #: clamped to [-μ, μ], may leave it again
    ALL: Final = (ABSORBING, CLAMP)


class Signal:
    """Which kernel response the astrocytes watch."""

    PRE: Final = "pre"  #: conv + bias
    POST: Final = "post"  #: after the layer's activation
    ALL: Final = (PRE, POST)


class Reduce:
    """How a kernel's activity is reduced over positions."""

    MEAN: Final = "mean"
    MAX: Final = "max"
    MAJORITY: Final = "majority"
    ALL: Final = (MEAN, MAX, MAJORITY)


class Scaling:
    """How the final gains are applied (same outputs either way)."""

    BLOCKED: Final = "blocked"  #: onnxruntime's blocked NCHWc layout, fastest on x86 CPUs
    BROADCAST: Final = "broadcast"  #: plain broadcast ops: ARM CPUs, GPUs, other runtimes
    #: blocked, and the modulated stage run image by image (a Scan over the batch): large
    #: batches on onnxruntime's CPU provider, where the batch's maps outgrow the L2 cache
    SCAN: Final = "scan"
    ALL: Final = (BLOCKED, BROADCAST, SCAN)


class Layout:
    """The axis order of an image input."""

    NHWC: Final = "NHWC"
    NCHW: Final = "NCHW"
    ALL: Final = (NHWC, NCHW)
