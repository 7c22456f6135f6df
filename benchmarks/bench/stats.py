"""Summaries and formatting of timings, Markdown tables, and the share of CPU others used."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def summary(values: Iterable[float]) -> dict[str, float]:
    """Median, quartiles, min, max and count of a sample."""
    a = np.asarray(list(values), dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
    }


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with 3 significant digits."""
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_spread(s: dict[str, float], scale: float = 1e3) -> str:
    """``median [q1–q3]`` in milliseconds (or another scale)."""
    if scale == 1e3:
        return f"{fmt_ms(s['median'])} [{fmt_ms(s['q1'])}–{fmt_ms(s['q3'])}]"
    return f"{s['median'] * scale:.3g} [{s['q1'] * scale:.3g}–{s['q3'] * scale:.3g}]"


def fmt_ratio(median: float, spread: dict[str, float] | None = None) -> str:
    """A ratio with the IQR of the per-round ratios."""
    text = f"{median:.2f}"
    return f"{text} [{spread['q1']:.2f}–{spread['q3']:.2f}]" if spread else text


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class CpuMeter:
    """How much of the machine's CPU time others used while a measurement ran.

    From ``/proc/stat`` (all busy time, hypervisor steal included) minus this process's
    own CPU time and that of its waited-for children, over wall time × cores. 0 % means the
    machine was ours; 50 % on 2 cores means one core's worth went to other jobs.
    """

    def __init__(self) -> None:
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float]:
        busy = float("nan")
        stat = Path("/proc/stat")
        if stat.exists():
            fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
            idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
            busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return time.perf_counter(), busy, own

    def others_percent(self) -> float:
        """Share of all cores' time used by other processes since construction, in %."""
        wall0, busy0, own0 = self.start
        wall1, busy1, own1 = self._snapshot()
        cores = os.cpu_count() or 1
        return max(0.0, 100.0 * ((busy1 - busy0) - (own1 - own0)) / ((wall1 - wall0) * cores))


def fmt_load(load: Sequence[float]) -> str:
    """A load-average triple."""
    return "/".join(f"{x:.2f}" for x in load)


def to_json(value: Any) -> Any:
    """Numpy scalars and tuples made JSON-ready."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
