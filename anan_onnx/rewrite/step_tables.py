"""The k monitoring steps as table lookups: counter (eq. 2) and trigger (eq. 3) per step.

Pattern rewritten (a fixed, non-tunable conversion)::

    per step: u = ±1, r ← hold/clamp(r + u), z = a | −b | idle by r, g ← update(g, z)
              (Greater, Where, Add, Abs, Equal, Where, Equal, Equal, Where, Where, Mul)
    becomes
    per step: r ← NEXT[r, u] (Gather), z ← TRIGGER[r] (Gather), g ← update(g, z)

The counter only takes the 2μ + 1 values −μ … μ, so eq. 2 (with its hold at ±μ, or the
clamp) is a transition table and eq. 3 with the update rule a table of multipliers (or z),
both filled at conversion time from (μ, a, b, idle). The steps stay unrolled: every step's
counter is a node ``anan/step{t}/counter``. On per-kernel tensors each node costs more
than its arithmetic (in onnxruntime ~0.5–1 µs of executor time each, measured in
isolation; inside a CNN more, and more for some ops than others), so at batch 1 what makes
the steps cheaper is measured in the whole graph, not counted in nodes.

Step 1 starts from r = 0, so its lookup is done at conversion time: its counter is a
``Where`` between the two possible outcomes. When every step reads the step-1 activity
(the absorbing counter, see ``_rewrite``), u is folded into the state (state = counter
index + (2μ + 1)·[u = +1]), so each later step's counter is one ``Gather``. Each step then
looks up its multiplier and multiplies the gain (``anan/step{t}/multiplier``,
``anan/step{t}/gain0``): measured ~2 % faster at batch 1 in the whole 128×128 CNN than
looking the k multipliers up in one ``Gather`` and taking their ``ReduceProd`` (the
``Concat`` and the reduction cost more there than their size says). With ``fold_steps``
the walks themselves are taken at conversion time, one per sign of u
(:func:`final_gains`), and the graph looks up the final gains directly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from anan_onnx.params import AnanParams

__all__ = ["StepTables", "final_gains", "folded_steps", "step_tables", "table_steps"]


@dataclasses.dataclass(frozen=True)
class StepTables:
    """Eqs. 2–3 tabulated for one parameter set.

    States ``s = i + n·f`` with counter index ``i = r + μ`` (``n = 2μ + 1`` values) and
    ``f = 1`` if the activity was positive (u = +1), else 0.

    Attributes:
        mu: trigger level μ; the counter starts at index μ (r = 0).
        next_state: for each state ``i + n·f``, the counter index after eq. 2 with that u.
        next_shared: for each state, the next state when u stays the same (shared activity).
        trigger: for each state, the multiplier (multiplicative rule: a, 1 − b or 1) or
            z (additive rule: a, −b or idle) of eq. 3 for its counter value.
    """

    mu: int
    next_state: np.ndarray
    next_shared: np.ndarray
    trigger: np.ndarray

    @property
    def counter_values(self) -> int:
        """n = 2μ + 1."""
        return 2 * self.mu + 1


def step_tables(params: AnanParams) -> StepTables:
    """Tabulates eq. 2 (``params.counter``) and eq. 3 with ``params.rule`` for ``params``.

    Example:
        >>> t = step_tables(AnanParams(k=4, mu=2, a=1.05, b=0.3))
        >>> [int(i) - 2 for i in t.next_state[:5]]  # u = -1 from r = -2 … 2 (held at ±2)
        [-2, -2, -1, 0, 2]
    """
    mu, n = params.mu, 2 * params.mu + 1
    counters = np.arange(-mu, mu + 1)
    nexts = []
    for u in (-1, 1):
        if params.counter == "absorbing":
            moved = np.where(np.abs(counters) == mu, counters, counters + u)
        else:
            moved = np.clip(counters + u, -mu, mu)
        nexts.append(moved + mu)
    next_state = np.concatenate(nexts).astype(np.int64)
    f = np.repeat([0, 1], n)
    next_shared = (next_state + n * f).astype(np.int64)
    if params.rule == "multiplicative":
        excite, inhibit, idle = params.a, 1.0 - params.b, 1.0
    else:
        excite, inhibit, idle = params.a, -params.b, params.idle
    per_counter = np.where(counters == mu, excite, np.where(counters == -mu, inhibit, idle))
    return StepTables(mu, next_state, next_shared, np.tile(per_counter, 2))


def table_steps(
    b, tables: StepTables, activity_of, gains: list, steps: int, shared: bool, rule: str
):
    """Emits the ``steps`` unrolled steps; returns the final gains.

    Args:
        b: the graph builder of ``_rewrite``.
        tables: from :func:`step_tables`.
        activity_of: ``(gains, tag) -> (N, O, 1, 1) activity`` for the current gains.
        gains: the initial gains (ones).
        steps: k.
        shared: every step may use the step-1 activity (then u is folded into the state).
        rule: ``'multiplicative'`` or ``'additive'``.
    """
    n = tables.counter_values
    table = tables.next_shared if shared else tables.next_state
    next_state = b.const_int("anan/next_state", table) if steps > 1 else None  # steps 2…k
    trigger = b.const("anan/trigger", tables.trigger)
    state = None
    for t in range(1, steps + 1):
        tag = f"anan/step{t}"
        if t == 1:
            state = _first_counter(b, tables, table, _fired(b, activity_of(gains, tag), tag), tag)
        else:
            if not shared:  # this step's u picks the half of the table
                fired = _fired(b, activity_of(gains, tag), tag)
                up, down = b.const_int(f"{tag}/up", [n]), b.const_int(f"{tag}/down", [0])
                offset = b.op("Where", [fired, up, down], f"{tag}/u_offset")
                state = b.op("Add", [state, offset], f"{tag}/key")
            state = b.op("Gather", [next_state, state], f"{tag}/counter")
        name = "multiplier" if rule == "multiplicative" else "z"
        value = b.op("Gather", [trigger, state], f"{tag}/{name}")
        gains = apply_trigger(b, gains, value, rule, tag)
    return gains


def final_gains(tables: StepTables, steps: int, rule: str, dtype: np.dtype) -> np.ndarray:
    """(2, parts): the gains after ``steps`` steps when every step reads the same u, for
    u = −1 (row 0) and u = +1 (row 1), stepped through the tables in ``dtype`` arithmetic."""
    n = tables.counter_values
    rows = []
    for f in (0, 1):
        state = tables.mu + n * f
        gains = np.ones(1 if rule == "multiplicative" else 2, dtype)
        for _ in range(steps):
            state = int(tables.next_shared[state])
            value = dtype.type(tables.trigger[state])
            if rule == "multiplicative":
                gains = gains * value
            else:
                gains = gains + np.array([1, -1], dtype) * np.abs(gains) * value
        rows.append(gains)
    return np.stack(rows)


def folded_steps(b, tables: StepTables, activity_of, gains: list, steps: int, rule: str):
    """The k steps folded into one lookup (``fold_steps``): only exact when every step
    reads the step-1 activity, so that u alone fixes the whole walk of the counter. The
    walks are taken at conversion time (:func:`final_gains`); the graph keeps the step-1
    activity, its sign test and one ``Gather`` per gain."""
    table = final_gains(tables, steps, rule, b.dtype)
    fired = _fired(b, activity_of(gains, "anan/step1"), "anan")
    index = b.op("Cast", [fired], "anan/u_index", to=ir.DataType.INT64)
    return [
        b.op("Gather", [b.const(f"anan/final_gain{i}", table[:, i]), index], f"anan/gain{i}")
        for i in range(table.shape[1])
    ]


def _fired(b, activity, tag: str):
    """Paper eq. 1 as a mask: u = +1 where the activity is > 0."""
    return b.op("Greater", [activity, b.const(f"{tag}/zero_s", 0.0)], f"{tag}/fired")


def _first_counter(b, tables: StepTables, table: np.ndarray, fired, tag: str):
    """Step 1's counter: the counter starts at r = 0 (index μ), so its step from there has
    two outcomes, looked up at conversion time in ``table`` (a transition table of
    ``tables``) for u = +1 (state μ + n) and u = −1 (state μ); the graph picks one."""
    n, mu = tables.counter_values, tables.mu
    up = b.const_int(f"{tag}/counter_up", [int(table[mu + n])])
    down = b.const_int(f"{tag}/counter_down", [int(table[mu])])
    return b.op("Where", [fired, up, down], f"{tag}/counter")


def apply_trigger(b, gains: list, value, rule: str, tag: str) -> list:
    """The update rule on the gains: g·m (multiplicative), or the additive identity of the
    spec, ``g⁺ + |g⁺|·z`` and ``g⁻ − |g⁻|·z`` (W⁻ entries are negative)."""
    if rule == "multiplicative":  # 1·m is m: the initial unit gain multiplies nothing
        return [
            value if g is b.unit else b.op("Mul", [g, value], f"{tag}/gain{i}")
            for i, g in enumerate(gains)
        ]
    g_pos, g_neg = gains
    step_pos = b.op(
        "Mul", [b.op("Abs", [g_pos], f"{tag}/gain_pos_abs"), value], f"{tag}/gain_pos_step"
    )
    step_neg = b.op(
        "Mul", [b.op("Abs", [g_neg], f"{tag}/gain_neg_abs"), value], f"{tag}/gain_neg_step"
    )
    return [
        b.op("Add", [g_pos, step_pos], f"{tag}/gain_pos"),
        b.op("Sub", [g_neg, step_neg], f"{tag}/gain_neg"),
    ]
