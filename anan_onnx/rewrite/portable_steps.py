"""The k monitoring steps in arithmetic that every onnxruntime backend runs alike.

Pattern rewritten (per step t, per image and kernel; the spec's eqs. 1–3)::

    u = ±1 by s > 0;  r ← hold|clamp(r + u);  z = a | −b | idle by r;  g ← update(g, z)
    becomes, on floats (0/1 indicators, counters as small whole numbers):
    f = [s > 0]     Clip(s, 0, 6)·2¹²⁵ → Clip(−1, 1)·2²⁴ → Clip(−1, 1)      anan/stepT/fired
    u = 2f − 1
    r ← r + u·(1 − blocked)   blocked = e + i (absorbing) | e·f + i·(1 − f) (clamp)
    e = Relu(r − (μ − 1)),  i = Relu((1 − μ) − r)      [r = μ], [r = −μ]  anan/stepT/counter
    m = e·a + i·(1 − b) + (1 − e − i)·1   (additive: z = e·a − i·b + (1 − e − i)·idle)
    g ← g·m  |  g⁺ + |g⁺|·z, g⁻ − |g⁻|·z   with |g| = Relu(g) + Relu(−g)  anan/stepT/gain0

and where every step reads the step-1 activity with parameters fixed at conversion (the
absorbing counter, the default; see ``graph``), the counter of step t is
r_t = u·min(t, μ), so eq. 3 has one value per sign of u, and each gain is carried for both
signs at once, as a pair that is zero in the branch not taken (last axis: u = −1, u = +1)
on the statistics flattened to (N, O, 1), so the pair is (N, O, 2)::

    G_1 = f·[−v₋, v₊] + [v₋, 0]                 v± = gain after step 1     anan/step1/gain0
    G_t = G_{t−1} ⊙ [m(r = −min(t, μ)), m(r = +min(t, μ))]                 anan/stepT/gain0
          (the constant anan/stepT/multiplier; additive: G + |G|⊙z, anan/stepT/gain_pos ...)
    g = G_k @ [1, 1]ᵀ                                                   anan/gain0_sum
    reshaped like the activity, (N, O, 1, 1) or the (N, 1, O, 1) column    anan/gain0

so a step is one ``Mul`` and each step's multiplier is readable in the graph;
``fold_steps`` (the default where it applies) puts the final gains in at once
(:func:`final_gains`): g = f·d + v₋ with a d for which v₋ + d rounds to v₊ exactly
(:func:`exact_step`; checked at conversion, else the pair above), 7 nodes from s to g
(9 where the blocked scaling reads a gain that is no column: :func:`folded_steps`).

The pair is not put on a fourth axis of the (N, O, 1, 1) statistic: onnx2tf reads every
4-D value as NCHW and makes it NHWC, and an (N, O, 1, 2) pair has no NHWC form it lowers
consistently (LiteRT's XNNPACK then fails to prepare the paper's CNN, "failed to reshape
runtime"); a ``Reshape`` to (N, O, 1) before the pair and back after the sum is exact and
leaves every engine's layout alone.

Why this form: the table lookups it replaces (int64 ``Gather`` chains, ``Greater``,
``Where``) ran wrong on onnxruntime-web's WebGPU backend (a chain of Gathers on one table
repeated the first one's values) and split the graph on NNAPI and CoreML, which lack
``Greater``/``Where``. Here the steps use ``Clip`` (only the ranges [0, 6] and [−1, 1],
the two NNAPI takes), ``Relu``, ``Add``, ``Sub``, ``Mul`` and ``MatMul``, which
NNAPI, both CoreML formats and the GPU backends support in float.

Exactness (each checked by tests, and the whole graph against the literal loop):

- the sign test: the first ``Clip`` keeps s in [0, 6]; times 2¹²⁵ stays finite (6·2¹²⁵ <
  2¹²⁸) and lifts the smallest positive subnormal (2⁻¹⁴⁹) to 2⁻²⁴, a normal number
  (multiplying by a power of two is exact without over- or underflow); after the second
  ``Clip`` every positive value lies in [2⁻²⁴, 1], times 2²⁴ it is ≥ 1, and the last
  ``Clip`` makes it exactly 1, while 0 (and −0, and every negative s) stays 0. No
  intermediate is inf or NaN for any finite s. The scales follow the dtype (``np.finfo``).
- the counter and the indicators are whole numbers far below 2²⁴: sums and products of
  them are exact, and for a whole r ≤ μ, ``Relu(r − (μ − 1))`` is 1 iff r = μ, else 0.
- a selection x·1 + y·0 + w·0 is exactly x, so e·a + i·(1 − b) + (1 − e − i)·1 picks one
  value bit for bit (unlike 1 + e·(a − 1)); the branch pairs hold 0 in one entry (f·(−v) + v
  is exactly 0 for f = 1, and a 0 stays 0 under both update rules), so their sum is exact,
  and the kept branch is updated with the same operations, in the same order, as a single
  gain would be.

A tunable export passes μ, a, b, idle and k as graph inputs (:class:`Knobs`); its steps
beyond ``anan_k`` keep the state by multiplying with ``active·m + (1 − active)`` (z·active
for the additive rule), ``active = [k − (t − 1) > 0]`` by the same sign test, exact for any
k. ``anan_k`` and ``anan_mu`` must be whole numbers, as the spec's k and μ are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from anan_onnx.choices import Counter, Rule
from anan_onnx.params import AnanParams
from anan_onnx.rewrite.builder import GraphBuilder

__all__ = [
    "Knobs",
    "apply_trigger",
    "exact_step",
    "final_gains",
    "fires",
    "fixed_knobs",
    "folded_steps",
    "general_steps",
    "shared_steps",
    "trigger_value",
]


#: ``(gains, tag) -> activity`` for the current gains (see ``activities.activity_strategy``).
ActivityOf = Callable[[list[ir.Value], str], ir.Value]


@dataclasses.dataclass(frozen=True)
class Knobs:
    """Eqs. 2–3's parameters as graph values: constants, or a tunable export's inputs.

    Attributes:
        mu_less_one: μ − 1 (r = μ ⟺ r − (μ − 1) = 1 for a whole r ≤ μ).
        one_less_mu: 1 − μ.
        excite: a (both rules).
        inhibit: 1 − b (multiplicative) or −b (additive).
        idle: the additive rule's idle z; None for the multiplicative rule (multiplier 1).
        k: a tunable export's ``anan_k`` (steps t > k keep the state), else None.
    """

    mu_less_one: ir.Value
    one_less_mu: ir.Value
    excite: ir.Value
    inhibit: ir.Value
    idle: ir.Value | None
    k: ir.Value | None = None


def fixed_knobs(b: GraphBuilder, params: AnanParams) -> Knobs:
    """:class:`Knobs` as constants, for a conversion with fixed parameters."""
    excite, inhibit, idle = _eq3_values(params)
    return Knobs(
        mu_less_one=b.scalar(params.mu - 1),
        one_less_mu=b.scalar(1 - params.mu),
        excite=b.scalar(excite),
        inhibit=b.scalar(inhibit),
        idle=None if params.rule == Rule.MULTIPLICATIVE else b.scalar(idle),
    )


def fires(b: GraphBuilder, s: ir.Value, name: str) -> ir.Value:
    """Paper eq. 1 as a 0/1 float: exactly 1 where s > 0, else 0 (see the module docstring)."""
    first, second = _sign_scales(b.dtype)
    kept = b.named("Clip", [s, b.scalar(0.0), b.scalar(6.0)], f"{name}_kept")
    lifted = b.named("Mul", [kept, b.scalar(first)], f"{name}_lifted")
    bounded = b.named("Clip", [lifted, b.scalar(-1.0), b.scalar(1.0)], f"{name}_bounded")
    raised = b.named("Mul", [bounded, b.scalar(second)], f"{name}_raised")
    return b.named("Clip", [raised, b.scalar(-1.0), b.scalar(1.0)], name)


def trigger_value(params: AnanParams, r: int) -> float:
    """Eq. 3 with the update rule at counter value r: the multiplier (a, 1 − b or 1) or z."""
    excite, inhibit, idle = _eq3_values(params)
    return excite if r == params.mu else inhibit if r == -params.mu else idle


def shared_steps(
    b: GraphBuilder,
    params: AnanParams,
    activity_of: ActivityOf,
    gains: list[ir.Value],
    steps: int,
    *,
    column: bool = False,
) -> list[ir.Value]:
    """The k steps when every step reads the step-1 activity and the parameters are fixed.

    Each gain is carried for both signs of u at once, as a pair (last axis) that is zero in
    the branch not taken: step 1 sets it from the sign test, every later step is the update
    rule with that step's two eq. 3 values (a (2,) constant), and a sum of the pair gives
    the gain. Returns the final gains, shaped like the activity ((N, 1, O, 1) with ``column``).
    """
    fired = _flat(b, fires(b, activity_of(gains, "anan/step1"), "anan/step1/fired"))
    branches: list[ir.Value] = []
    for t in range(1, steps + 1):
        tag = f"anan/step{t}"
        reach = min(t, params.mu)  # |r_t|: the counter walks straight to ±μ and is held
        values = np.array([trigger_value(params, -reach), trigger_value(params, reach)])
        if t == 1:  # from the unit gain: its value after the step, per branch
            firsts = _after_first_step(params.rule, values.astype(b.dtype))
            branches = [
                _branches(b, fired, first, _gain_name(params.rule, i, tag))
                for i, first in enumerate(firsts)
            ]
        else:
            value = b.const(f"{tag}/{_value_name(params.rule)}", values)
            branches = apply_trigger(b, branches, value, params.rule, tag)
    return [_merged(b, pair, f"anan/gain{i}", column) for i, pair in enumerate(branches)]


def final_gains(params: AnanParams, steps: int, dtype: np.dtype) -> np.ndarray:
    """(2, parts): the gains after ``steps`` shared steps for u = −1 (row 0) and u = +1
    (row 1), in ``dtype`` arithmetic in the order the unrolled graph computes them."""
    rows = []
    for u in (-1, 1):
        gains = np.ones(1 if params.rule == Rule.MULTIPLICATIVE else 2, dtype)
        for t in range(1, steps + 1):
            value = dtype.type(trigger_value(params, u * min(t, params.mu)))
            if params.rule == Rule.MULTIPLICATIVE:
                gains = gains * value
            else:
                gains = gains + np.array([1, -1], dtype) * (np.abs(gains) * value)
        rows.append(gains)
    return np.stack(rows)


def folded_steps(
    b: GraphBuilder,
    params: AnanParams,
    activity_of: ActivityOf,
    gains: list[ir.Value],
    steps: int,
    *,
    column: bool = False,
    via_flat: bool = False,
) -> list[ir.Value]:
    """The k shared steps folded (``fold_steps``): the step-1 activity, its sign test and,
    per gain, its two final values of :func:`final_gains` picked by the sign.

    ``via_flat`` picks on the (N, O, 1) tests, as the pairs do, and reshapes back (2 nodes
    more): onnx2tf mislays f·d + v₋ on a 4-D test of a pooled map when the blocked scaling
    then reads it as a column (LiteRT crashed on the paper's CNN with ``signal=post``)."""
    table = final_gains(params, steps, b.dtype)
    fired = fires(b, activity_of(gains, "anan/step1"), "anan/fired")
    exact = [exact_step(low, high) for low, high in table.T]
    flat = _flat(b, fired) if via_flat or None in exact else fired
    gains = []
    for i, step in enumerate(exact):
        name = f"anan/gain{i}"
        if step is None:
            pair = _branches(b, flat, table[:, i], f"{name}_branches")
            gains.append(_merged(b, pair, name, column))
        elif via_flat:
            picked = _picked(b, flat, step, table[0, i], name, out=f"{name}_picked")
            gains.append(_shaped(b, picked, name, column))
        else:
            gains.append(_picked(b, fired, step, table[0, i], name))
    return gains


def _picked(
    b: GraphBuilder,
    fired: ir.Value,
    step: np.floating,
    low: np.floating,
    name: str,
    out: str | None = None,
) -> ir.Value:
    """v₋ or v₊ by f ∈ {0, 1}: f·d + v₋ (2 nodes) with a d for which v₋ + d rounds to v₊
    exactly (:func:`exact_step`; 0·d + v₋ is v₋ for any finite d); else :func:`_branches`."""
    part = b.named("Mul", [fired, b.const(f"{name}_step", np.asarray(step))], f"{name}_part")
    return b.named("Add", [part, b.const(f"{name}_low", np.asarray(low))], out or name)


def exact_step(low: np.floating, high: np.floating, tries: int = 8) -> np.floating | None:
    """A finite d with low + d == high in ``low``'s dtype, or None: d = high − low rounded,
    else one of its nearest neighbours (the sum rounds once more)."""
    step = high - low
    for _ in range(tries):
        if not np.isfinite(step):
            return None
        if low + step == high:
            return step
        step = np.nextafter(step, np.inf if low + step < high else -np.inf)
    return None


def general_steps(
    b: GraphBuilder,
    knobs: Knobs,
    params: AnanParams,
    activity_of: ActivityOf,
    gains: list[ir.Value],
    steps: int,
    shared: bool,
) -> list[ir.Value]:
    """The k steps with the counter in the graph (eqs. 1–3 as in the module docstring): any
    counter, rule and idle, fixed or tunable parameters. ``shared``: every step may use the
    step-1 activity. Returns the final gains."""
    counter: ir.Value | None = None
    trig: tuple[ir.Value, ir.Value] | None = None  # [r = μ], [r = −μ] of the counter
    fired = u = None
    for t in range(1, steps + 1):
        tag = f"anan/step{t}"
        if fired is None or not shared:
            fired = fires(b, activity_of(gains, tag), f"{tag}/fired")
            doubled = b.named("Add", [fired, fired], f"{tag}/fired_twice")
            # r = 0 before step 1, never at ±μ (μ >= 1): step 1's counter is u itself
            u_name = f"{tag}/counter" if counter is None else f"{tag}/u"
            u = b.named("Sub", [doubled, b.scalar(1.0)], u_name)
        assert u is not None
        counter = u if counter is None else _count(b, counter, u, fired, trig, params, tag)
        excite = b.named(
            "Relu", [b.named("Sub", [counter, knobs.mu_less_one], f"{tag}/over")], f"{tag}/excite"
        )
        inhibit = b.named(
            "Relu", [b.named("Sub", [knobs.one_less_mu, counter], f"{tag}/under")], f"{tag}/inhibit"
        )
        trig = (excite, inhibit)
        value = _select(b, excite, inhibit, knobs, t, params.rule, tag)
        gains = apply_trigger(b, gains, value, params.rule, tag)
    return gains


def apply_trigger(
    b: GraphBuilder, gains: list[ir.Value], value: ir.Value, rule: str, tag: str
) -> list[ir.Value]:
    """The update rule on the gains: g·m (multiplicative), or the additive identity of the
    spec, ``g⁺ + |g⁺|·z`` and ``g⁻ − |g⁻|·z`` (W⁻ entries are negative)."""
    if rule == Rule.MULTIPLICATIVE:  # 1·m is m: the initial unit gain multiplies nothing
        return [
            value if g is b.unit else b.named("Mul", [g, value], f"{tag}/gain{i}")
            for i, g in enumerate(gains)
        ]
    g_pos, g_neg = gains
    step_pos = _magnitude_times(b, g_pos, value, f"{tag}/gain_pos")
    step_neg = _magnitude_times(b, g_neg, value, f"{tag}/gain_neg")
    return [
        b.named("Add", [g_pos, step_pos], f"{tag}/gain_pos"),
        b.named("Sub", [g_neg, step_neg], f"{tag}/gain_neg"),
    ]


def _magnitude_times(b: GraphBuilder, gain: ir.Value, value: ir.Value, name: str) -> ir.Value:
    """|g|·z, with |g| = Relu(g) + Relu(−g) (``Abs`` is missing from CoreML's lists)."""
    if gain is b.unit:
        return value
    flipped = b.named("Mul", [gain, b.scalar(-1.0)], f"{name}_flipped")
    positive = b.named("Relu", [gain], f"{name}_positive")
    negative = b.named("Relu", [flipped], f"{name}_negative")
    magnitude = b.named("Add", [positive, negative], f"{name}_abs")
    return b.named("Mul", [magnitude, value], f"{name}_step")


def _count(
    b: GraphBuilder,
    counter: ir.Value,
    u: ir.Value,
    fired: ir.Value,
    trig: tuple[ir.Value, ir.Value] | None,
    params: AnanParams,
    tag: str,
) -> ir.Value:
    """Eq. 2: r ← r + u·(1 − blocked). Absorbing: blocked at ±μ; clamp: blocked only when u
    would leave [−μ, μ] (at μ with u = +1, at −μ with u = −1)."""
    assert trig is not None, "the counter's indicators come with it"
    excite, inhibit = trig
    if params.counter == Counter.ABSORBING:
        blocked = b.named("Add", [excite, inhibit], f"{tag}/held")
    else:
        silent = b.named("Sub", [b.scalar(1.0), fired], f"{tag}/silent")
        top = b.named("Mul", [excite, fired], f"{tag}/at_top")
        bottom = b.named("Mul", [inhibit, silent], f"{tag}/at_bottom")
        blocked = b.named("Add", [top, bottom], f"{tag}/held")
    free = b.named("Sub", [b.scalar(1.0), blocked], f"{tag}/free")
    moved = b.named("Mul", [u, free], f"{tag}/moved")
    return b.named("Add", [counter, moved], f"{tag}/counter")


def _select(
    b: GraphBuilder, excite: ir.Value, inhibit: ir.Value, knobs: Knobs, t: int, rule: str, tag: str
) -> ir.Value:
    """Eq. 3: e·a + i·(1 − b or −b) + (1 − e − i)·(1 or idle), exact for 0/1 indicators; in a
    tunable export, steps beyond ``anan_k`` give the value that changes nothing."""
    name = f"{tag}/{_value_name(rule)}"
    rest = b.named(
        "Sub",
        [b.named("Sub", [b.scalar(1.0), excite], f"{tag}/not_excite"), inhibit],
        f"{tag}/idle",
    )
    if knobs.idle is not None:
        rest = b.named("Mul", [rest, knobs.idle], f"{tag}/idle_value")
    on = b.named("Mul", [excite, knobs.excite], f"{tag}/excite_value")
    off = b.named("Mul", [inhibit, knobs.inhibit], f"{tag}/inhibit_value")
    chosen = b.named(
        "Add",
        [b.named("Add", [on, off], f"{tag}/triggered"), rest],
        name if knobs.k is None else f"{name}_new",
    )
    if knobs.k is None:
        return chosen
    left = b.named("Sub", [knobs.k, b.scalar(t - 1)], f"{tag}/steps_left")
    active = fires(b, left, f"{tag}/active")
    if rule == Rule.ADDITIVE:  # z = 0 leaves both gains as they are
        return b.named("Mul", [active, chosen], name)
    kept = b.named("Mul", [active, chosen], f"{name}_active")
    idle = b.named("Sub", [b.scalar(1.0), active], f"{tag}/inactive")
    return b.named("Add", [kept, idle], name)


def _after_first_step(rule: str, values: np.ndarray) -> list[np.ndarray]:
    """Per gain, its two values (u = −1, +1) after step 1 from the unit gain, in the graph's
    arithmetic: 1·m = m, or 1 + 1·z and 1 − 1·z (``apply_trigger`` on a unit gain)."""
    if rule == Rule.MULTIPLICATIVE:
        return [values]
    one = values.dtype.type(1)
    return [one + values, one - values]


def _branches(b: GraphBuilder, fired: ir.Value, values: np.ndarray, name: str) -> ir.Value:
    """[(1 − f)·v₋, f·v₊] along a new last axis, as f·[−v₋, v₊] + [v₋, 0]: exact for f ∈ {0, 1}
    (v₋ − v₋ is 0, and 0 + v₋ is v₋)."""
    signed = b.const(f"{name}_signed", [-values[0], values[1]])
    offset = b.const(f"{name}_offset", [values[0], 0.0])
    return b.named("Add", [b.named("Mul", [fired, signed], f"{name}_part"), offset], name)


def _flat(b: GraphBuilder, fired: ir.Value) -> ir.Value:
    """The sign tests (N, O, 1, 1) or (N, 1, O, 1) as (N, O, 1), which the pairs extend (see the
    module docstring: no 4-D pair)."""
    shape = b.const_int(f"{fired.name}_dims", [-1, _channels(b), 1])
    return b.named("Reshape", [fired, shape], f"{fired.name}_flat")


def _merged(b: GraphBuilder, pair: ir.Value, name: str, column: bool) -> ir.Value:
    """The branch taken: the sum of a pair whose other entry is 0 (exact), as a ``MatMul``
    with [1, 1]ᵀ, which drops the pair axis; reshaped like the activity, (N, O, 1, 1) or
    the (N, 1, O, 1) ``column``."""
    ones = b.const(f"{name}_ones", np.ones((2, 1)))
    return _shaped(b, b.named("MatMul", [pair, ones], f"{name}_sum"), name, column)


def _shaped(b: GraphBuilder, flat: ir.Value, name: str, column: bool) -> ir.Value:
    """A per-kernel (N, O, 1) value reshaped like the activity: (N, O, 1, 1) or the
    (N, 1, O, 1) ``column``."""
    channels = _channels(b)
    dims = [-1, 1, channels, 1] if column else [-1, channels, 1, 1]
    return b.named("Reshape", [flat, b.const_int(f"{name}_dims", dims)], name)


def _channels(b: GraphBuilder) -> int:
    """O, from the initial gains (1, O, 1, 1)."""
    assert b.unit is not None and b.unit.const_value is not None
    return int(b.unit.const_value.numpy().shape[1])


def _gain_name(rule: str, i: int, tag: str) -> str:
    if rule == Rule.MULTIPLICATIVE:
        return f"{tag}/gain{i}"
    return f"{tag}/{('gain_pos', 'gain_neg')[i]}"


def _eq3_values(params: AnanParams) -> tuple[float, float, float]:
    """(excite, inhibit, idle) of eq. 3 under the update rule."""
    if params.rule == Rule.MULTIPLICATIVE:
        return params.a, 1.0 - params.b, 1.0
    return params.a, -params.b, params.idle


def _value_name(rule: str) -> str:
    return "multiplier" if rule == Rule.MULTIPLICATIVE else "z"


def _sign_scales(dtype: np.dtype) -> tuple[float, float]:
    """The two powers of two of :func:`fires` for ``dtype``: 2¹²⁵ and 2²⁴ for float32.

    The first keeps 6·scale below the largest finite value; the second lifts the smallest
    subnormal, times the first, to 1."""
    info = np.finfo(dtype)
    first = info.maxexp - 3
    smallest = int(np.log2(info.smallest_subnormal))
    return 2.0**first, 2.0 ** -(smallest + first)
