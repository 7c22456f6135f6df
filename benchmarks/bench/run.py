"""The benchmark run: every section in order, then the report and the raw JSON."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench.cold_start import run_cold_start
from benchmarks.bench.config import MODELS, THREADINGS, make_plan, parse_args
from benchmarks.bench.conversion import run_conversion
from benchmarks.bench.environment import (
    code_state,
    command_line,
    machine_info,
    use_git_ref,
    versions,
)
from benchmarks.bench.goals import goals
from benchmarks.bench.latency import prepare_latency, run_latency
from benchmarks.bench.loops import run_loops
from benchmarks.bench.models import import_tf, prepare_model
from benchmarks.bench.profile import run_profiles
from benchmarks.bench.report import report
from benchmarks.bench.sessions import global_pool_available, use_global_pool
from benchmarks.bench.stats import to_json


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and writes the report."""
    args = parse_args(argv)
    plan = make_plan(args)
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_") as name:
        tmp = Path(name)
        ref_sha = use_git_ref(args.git_ref, tmp) if args.git_ref else None
        results: dict[str, Any] = {
            "command": command_line(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_info(),
            "versions": versions(plan.use_tf),
            "code": code_state(ref_sha),
            "plan": dataclasses.asdict(plan),
            "models": [{"name": n, "text": MODELS[n].describe()} for n in plan.models],
        }
        if plan.use_tf:
            import_tf()
        preps = [prepare_model(MODELS[n], plan, tmp) for n in plan.models]
        log(f"models ready: {', '.join(plan.models)}")
        # ONNX Runtime's default first; each set of sessions runs in a process of its own
        spinning = global_pool_available()
        threadings = THREADINGS if spinning else ("no spinning",)
        groups = prepare_latency(preps, plan, tmp)
        results["latency"] = [
            row for threading in threadings for row in run_latency(groups, plan, log, threading)
        ]
        results["loops"] = run_loops(preps, plan, log)
        results["conversion"] = run_conversion(preps[0], plan, tmp)
        log(f"conversion: {results['conversion']['warm_s']['median']:.2f} s")
        results["cold_start"] = run_cold_start(preps[0], plan, tmp)
        log("cold start done")
        # last: once the global pool exists, sessions with their own pools are refused
        threading = "spinning" if spinning and use_global_pool() else "no spinning"
        results["profiles"] = run_profiles(preps, plan, tmp, threading)
        log("profiles done")
    results["tensorflow_imported"] = "tensorflow" in sys.modules
    results["loadavg_at_end"] = os.getloadavg()
    results["wall_s"] = time.perf_counter() - start
    results["goals"] = goals(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results), encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(results), indent=1), encoding="utf-8")
    log(f"wrote {args.out}" + (f" and {args.json}" if args.json else ""))
    return 0
