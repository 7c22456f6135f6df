"""Section 1: latency of the base CNN and of every ANAN option, in interleaved rounds."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from benchmarks.bench.config import CONVERT_OPTIONS, MODES, OPTIONS, ModelSpec, Plan
from benchmarks.bench.models import Prepared, fixed_batch, params_for
from benchmarks.bench.sessions import SessionSet, in_fresh_process, rotated, time_session_set
from benchmarks.bench.stats import CpuMeter, fmt_ms, summary


@dataclasses.dataclass
class LatencyGroup:
    """One (model, batch, mode, k): the base CNN and every ANAN option, saved as files."""

    spec: ModelSpec
    batch: int
    mode: str
    k: int
    paths: dict[str, str]  # "base" and each of OPTIONS → ONNX file
    sets: int  # sets of sessions (processes) to time it in

    def label(self) -> str:
        return f"{self.spec.name} b{self.batch} {self.mode} k={self.k}"


def prepare_latency(preps: list[Prepared], plan: Plan, tmp: Path) -> list[LatencyGroup]:
    """Converts the models of every (model, batch, mode, k) group once, for both threadings."""
    from anan_onnx import convert_model

    groups = []
    for prep in preps:
        for batch in plan.batches:
            for mode in MODES:
                fixed = batch if mode == "fixed" else None
                base = prep.base if fixed is None else fixed_batch(prep.base, batch)
                for k in plan.ks:
                    folder = tmp / f"latency_{prep.spec.name}_{batch}_{mode}_{k}"
                    folder.mkdir()
                    models = {"base": base}
                    for option in OPTIONS:
                        models[option] = convert_model(
                            prep.base,
                            params_for(k, option),
                            batch=fixed,
                            **CONVERT_OPTIONS.get(option, {}),
                        ).anan
                    paths = {name: str(folder / f"model{i}.onnx") for i, name in enumerate(models)}
                    for name, model in models.items():
                        onnx.save(model, paths[name])
                    sets = plan.session_sets_big if batch > 1 else plan.session_sets_b1
                    groups.append(LatencyGroup(prep.spec, batch, mode, k, paths, sets))
    return groups


def run_latency(
    groups: list[LatencyGroup], plan: Plan, log: Callable[[str], None], threading: str
) -> list[dict]:
    """Section 1: base vs ANAN (every option) for every group, interleaved in rounds.

    Each group's time budget is split among its ``sets`` sets of sessions (one per model
    each), every set in a fresh process (:func:`time_session_set`): where a session's
    buffers land in memory moves its times for its whole life, and sessions created again
    in the same process land alike, so one set would make each ratio a draw of that
    placement. The sets run in passes, pass i timing set i of every group, so that a
    stretch of minutes when other jobs press on the machine's memory and caches (slowing
    ANAN more than the base CNN, apparently its passes over the first layer's maps) falls
    on one set of many groups instead of on every set of one group."""
    times = [{name: [] for name in g.paths} for g in groups]
    set_ratios = [{name: [] for name in g.paths} for g in groups]
    busy = [[0.0, 0.0] for _ in groups]  # others' CPU % × seconds, seconds
    for i in range(max(g.sets for g in groups)):
        start = time.perf_counter()
        for g, got_all, ratios, load in zip(groups, times, set_ratios, busy, strict=True):
            if i >= g.sets:
                continue
            meter, began = CpuMeter(), time.perf_counter()
            got = in_fresh_process(time_session_set, session_set(g, i, plan, threading))
            seconds = time.perf_counter() - began
            load[0] += meter.others_percent() * seconds
            load[1] += seconds
            for name in g.paths:
                got_all[name] += got[name]
                ratios[name].append(float(np.median(got[name]) / np.median(got["base"])))
        log(f"latency ({threading}) pass {i + 1}: {time.perf_counter() - start:.0f} s")
    rows = []
    for g, got_all, ratios, load in zip(groups, times, set_ratios, busy, strict=True):
        group = latency_rows(g, got_all, ratios, load[0] / max(load[1], 1e-9), threading)
        summary_ = ", ".join(f"{r['option']} {r['ratio']:.2f}" for r in group)
        base_ms = fmt_ms(group[0]["base_s"]["median"])
        log(f"latency ({threading}) {g.label()}: base {base_ms} ms; {summary_}")
        rows += group
    return rows


def session_set(group: LatencyGroup, index: int, plan: Plan, threading: str) -> SessionSet:
    """Set ``index`` of ``group``: its share of the budget, sessions created in an order
    rotated by ``index``."""
    big = group.batch > 1
    return SessionSet(
        paths=group.paths,
        creation_order=rotated(list(group.paths), index),
        spec=group.spec,
        batch=group.batch,
        seed=plan.seed + group.batch,
        threading=threading,
        # a fresh process still grows its buffers in the first runs of a large batch
        warmup=2 if big else plan.warmup,
        min_rounds=-(-plan.min_rounds // group.sets),
        max_rounds=(plan.max_rounds_big if big else plan.max_rounds_b1) // group.sets,
        budget_s=(plan.budget_big_s if big else plan.budget_b1_s) / group.sets,
    )


def latency_rows(
    group: LatencyGroup,
    times: dict[str, list[float]],
    set_ratios: dict[str, list[float]],
    others_percent: float,
    threading: str,
) -> list[dict[str, Any]]:
    """One result row per ANAN option of ``group``."""
    base = np.asarray(times["base"])
    rows = []
    for option in OPTIONS:
        anan = np.asarray(times[option])
        rows.append(
            {
                "model": group.spec.name,
                "batch": group.batch,
                "mode": group.mode,
                "k": group.k,
                "option": option,
                "threading": threading,
                "session_sets": group.sets,
                "rounds": len(base),
                "base_s": summary(base),
                "anan_s": summary(anan),
                "ratio": float(np.median(anan) / np.median(base)),
                "ratio_rounds": summary(anan / base),
                "ratio_min": float(anan.min() / base.min()),
                "set_ratios": set_ratios[option],
                "loadavg_1min": os.getloadavg()[0],
                "others_cpu_percent": others_percent,
                "base_raw_s": base.tolist(),
                "anan_raw_s": anan.tolist(),
            }
        )
    return rows
