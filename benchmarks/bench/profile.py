"""Section 2: onnxruntime profiles of the base and ANAN graphs (where the time goes)."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from benchmarks.bench.config import Plan
from benchmarks.bench.models import Prepared, images, params_for
from benchmarks.bench.sessions import threading_settings
from benchmarks.ort_session import open_session


def profile_model(
    model: onnx.ModelProto, x: np.ndarray, warmup: int, runs: int, prefix: Path, threading: str
) -> dict[str, Any]:
    """Runs ``model`` with onnxruntime's profiler; per-node and per-op-type ms per run."""
    settings = threading_settings(threading)
    session = open_session(model.SerializeToString(), **settings, profile_prefix=prefix)
    feeds = {session.get_inputs()[0].name: x}
    for _ in range(warmup + runs):
        session.run(None, feeds)
    path = Path(session.end_profiling())
    events = json.loads(path.read_text())
    return summarise_profile(events, runs)


def summarise_profile(events: list[dict[str, Any]], runs: int) -> dict[str, Any]:
    """Kernel time per node and per op type over the last ``runs`` model runs (ms per run)."""
    model_runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
        key=lambda e: e["ts"],
    )[-runs:]
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs]
    nodes: dict[str, dict[str, Any]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if not any(lo <= e["ts"] <= hi for lo, hi in windows):
            continue
        node = name[: -len("_kernel_time")]
        entry = nodes.setdefault(node, {"op": e.get("args", {}).get("op_name", "?"), "us": 0.0})
        entry["us"] += e["dur"]
    n = max(len(windows), 1)
    run_ms = float(np.median([e["dur"] for e in model_runs])) / 1e3 if model_runs else 0.0
    node_rows = sorted(
        ({"node": k, "op": v["op"], "ms": v["us"] / n / 1e3} for k, v in nodes.items()),
        key=lambda r: -r["ms"],
    )
    ops: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in node_rows:
        ops[row["op"]] = ops.get(row["op"], 0.0) + row["ms"]
        counts[row["op"]] = counts.get(row["op"], 0) + 1
    anan_ms = sum(r["ms"] for r in node_rows if r["node"].startswith("anan/"))
    return {
        "runs": len(windows),
        "run_ms": run_ms,
        "kernel_ms": sum(r["ms"] for r in node_rows),
        "anan_nodes_ms": anan_ms,
        "nodes": node_rows,
        "ops": sorted(
            ({"op": k, "ms": v, "nodes": counts[k]} for k, v in ops.items()),
            key=lambda r: -r["ms"],
        ),
    }


def run_profiles(
    preps: list[Prepared], plan: Plan, tmp: Path, threading: str
) -> list[dict[str, Any]]:
    """Section 2: profiles of base and ANAN (first k) for the first model: at the largest
    batch (default options dynamic and fixed, ``signal=post``), and at batch 1."""
    from anan_onnx import convert_model

    prep, big, k = preps[0], max(plan.batches), plan.ks[0]
    configs = [("base", "dynamic", None, big), ("default", "dynamic", "default", big)]
    if not plan.quick:
        configs += [("default", "fixed", "default", big)]
        configs += [("signal=post", "dynamic", "signal=post", big)]
        if big > 1:
            configs += [("base", "dynamic", None, 1), ("default", "dynamic", "default", 1)]
    results = []
    for label, mode, option, batch in configs:
        x = images(prep.spec, batch, plan.seed + batch)
        if option is None:
            model = prep.base
        else:
            fixed = batch if mode == "fixed" else None
            model = convert_model(prep.base, params_for(k, option), batch=fixed).anan
        runs = plan.profile_runs if batch > 1 else 10 * plan.profile_runs
        prefix = tmp / f"profile_{label}_{mode}_{batch}".replace("=", "_")
        result = profile_model(model, x, warmup=2, runs=runs, prefix=prefix, threading=threading)
        result.update(
            model=prep.spec.name, batch=batch, k=k, label=label, mode=mode, threading=threading
        )
        results.append(result)
        gc.collect()
    return results
