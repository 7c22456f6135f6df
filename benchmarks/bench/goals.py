"""The goals table: each goal's figure as the worst case over models and k."""

from __future__ import annotations

from typing import Any

from benchmarks.bench.config import GOALS, THREADINGS


def _pick(rows: list[dict], **where: object) -> list[dict]:
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _matching(rows: list[dict], **where: object) -> list[dict]:
    return [
        r
        for r in rows
        if all(r[k] in v if isinstance(v, tuple) else r[k] == v for k, v in where.items())
    ]


def _latency_goal(rows: list[dict], goal: float, label: str, **where: object) -> dict | None:
    """The worst ratio among the matching latency rows of the first threading measured
    (``THREADINGS``), against ``goal``; the other threading's worst is added to the detail."""
    measured = [t for t in THREADINGS if _matching(rows, threading=t, **where)]
    if not measured:
        return None
    found = _matching(rows, threading=measured[0], **where)
    worst = max(found, key=lambda r: r["ratio"])
    detail = "; ".join(
        f"{r['model']} k{r['k']}{' ' + r['mode'][:3] if 'mode' not in where else ''}"
        f"{' ' + r['option'] if r['option'] != 'default' else ''}: {r['ratio']:.2f}"
        for r in found
    )
    detail = f"threads {measured[0]}: {detail}"
    for other in measured[1:]:
        ratio = max(r["ratio"] for r in _matching(rows, threading=other, **where))
        detail += f" (threads {other}: worst {ratio:.2f})"
    return {
        "figure": label,
        "goal": f"≤ {goal:.2f}",
        "value": f"{worst['ratio']:.2f} (worst)",
        "ok": worst["ratio"] <= goal,
        "detail": detail,
    }


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals table, each figure taken as the worst case over models and k."""
    rows = results["latency"]
    big = max((r["batch"] for r in rows), default=1)
    out = [
        _latency_goal(
            rows,
            GOALS["fixed64"],
            f"ANAN / base latency, batch {big}, fixed batch",
            batch=big,
            mode="fixed",
            option="default",
        ),
        _latency_goal(
            rows,
            GOALS["dynamic64"],
            f"ANAN / base latency, batch {big}, dynamic batch",
            batch=big,
            mode="dynamic",
            option="default",
        ),
        _latency_goal(
            rows,
            GOALS["batch1"],
            "ANAN / base latency, batch 1 (fixed and dynamic)",
            batch=1,
            option="default",
        ),
        _latency_goal(
            rows,
            GOALS["heavy64"],
            f"ANAN / base, batch {big}, signal=post or reduce=max",
            batch=big,
            option=("signal=post", "reduce=max"),
        ),
    ]
    loops = [r for r in results["loops"] if "tf_function_s" in r and "anan_big_s" in r]
    if loops:
        ratios = [(r, r["tf_function_s"]["median"] / r["anan_big_s"]["median"]) for r in loops]
        worst = min(ratios, key=lambda t: t[1])
        out.append(
            {
                "figure": "ANAN throughput / naive tf.function loop",
                "goal": f"≥ {GOALS['throughput']:.0f}×",
                "value": f"{worst[1]:.1f}× (worst)",
                "ok": worst[1] >= GOALS["throughput"],
                "detail": "; ".join(
                    f"{r['model']} k{r['k']}: {v:.1f}× (base CNN alone: "
                    f"{r['tf_function_s']['median'] / r['base_big_s']['median']:.1f}×)"
                    for r, v in ratios
                )
                + f" (ANAN default options, dynamic batch {loops[0]['anan_batch']}, "
                "run image by image alongside the loop)",
            }
        )
    cold = results.get("cold_start")
    if cold:
        entry = cold["variants"]["anan_onnx (no TF), ANAN model"]
        t, rss = entry["external_s"]["median"], entry["maxrss_mb"]["median"]
        out.append(
            {
                "figure": "inference process without TF: cold start, peak RSS",
                "goal": f"≤ {GOALS['cold_s']} s, ≤ {GOALS['rss_mb']:.0f} MB",
                "value": f"{t:.2f} s, {rss:.0f} MB",
                "ok": t <= GOALS["cold_s"] and rss <= GOALS["rss_mb"],
                "detail": f"wall time of the process seen from outside; inside: "
                f"{entry['internal_s']['median']:.2f} s; batch 1, {cold['model']} model",
            }
        )
    conv = results.get("conversion")
    if conv:
        t = conv["warm_s"]["median"]
        detail = f"convert_file {conv['source']} → ANAN ONNX, median of {conv['warm_s']['n']}"
        if "fresh_process_s" in conv:
            detail += f"; fresh CLI process incl. TF import: {conv['fresh_process_s']:.1f} s"
        out.append(
            {
                "figure": f"conversion of the {conv['model']} model",
                "goal": f"≤ {GOALS['convert_s']:.0f} s",
                "value": f"{t:.1f} s",
                "ok": t <= GOALS["convert_s"],
                "detail": detail,
            }
        )
    return [g for g in out if g is not None]
