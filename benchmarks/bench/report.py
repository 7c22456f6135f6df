"""The Markdown report: one renderer per section."""

from __future__ import annotations

import textwrap
from typing import Any

from benchmarks.bench.config import LOOP_PAUSE_S, THREADINGS, THREADS
from benchmarks.bench.goals import _pick
from benchmarks.bench.stats import fmt_load, fmt_ratio, fmt_spread, md_table


def report(results: dict[str, Any]) -> str:
    """The Markdown report."""
    parts = [report_header(results), report_goals(results), report_method(results)]
    parts += [report_latency(results), report_profile(results), report_loops(results)]
    parts += [report_conversion(results), report_cold(results)]
    return "\n\n".join(p for p in parts if p) + "\n"


def report_header(results: dict[str, Any]) -> str:
    """Title, command, date, machine, versions, code state."""
    m, v, c = results["machine"], results["versions"], results["code"]
    lines = [
        "# Benchmarks: ANAN at the cost of the base CNN",
        "",
        f"Produced by `{results['command']}` (run from the repository root) on "
        f"{results['date']}; wall time {results['wall_s'] / 60:.1f} min.",
        "",
        f"- Machine: {m['cores']} cores ({m['usable_cores']} usable), {m['cpu']}, "
        f"{m['ram_gib']} GiB RAM ({m['available_gib_at_start']} GiB available at start), "
        f"{m['platform']}; load average at start {fmt_load(m['loadavg_at_start'])}, "
        f"at end {fmt_load(results['loadavg_at_end'])} (other jobs share this machine).",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Code measured: anan_onnx from the {c['measured']}; repository HEAD {c['head']}; "
        f"`anan_onnx/rewrite/` as of {c['rewrite_commit']} (sha256 {c['rewrite_sha256']})"
        + (
            f"; uncommitted changes in anan_onnx/: {c['anan_onnx_modified']}."
            if "anan_onnx_modified" in c
            else "."
        ),
        "- Models: " + "; ".join(f"**{s['name']}**: {s['text']}" for s in results["models"]),
    ]
    return "\n".join(lines)


def report_goals(results: dict[str, Any]) -> str:
    """The goals table (✓/✗)."""
    rows = [
        (g["figure"], g["goal"], g["value"], "✓" if g["ok"] else "✗", g["detail"])
        for g in results["goals"]
    ]
    return "## Goals\n\n" + md_table(["figure", "goal", "measured", "", "details"], rows)


def report_method(results: dict[str, Any]) -> str:
    """How the numbers were taken."""
    plan = results["plan"]
    return textwrap.dedent(f"""\
        ## Method

        All onnxruntime sessions use {THREADS} intra-op threads (sequential executor, i.e. one
        inter-op thread), graph optimisation level `all`, CPU provider, as
        `anan_onnx.Session(model, threads={THREADS})` sets them up. The latency is measured
        twice, with the threads waiting between runs in two ways ("threads" in the tables):

        - **spinning**: onnxruntime's default, idle threads spin, as in a process serving
          one model. Here the sessions share one global pool of {THREADS} threads
          (`set_global_thread_pool_sizes`, `use_per_session_threads=False`): with a pool
          per session, the idle sessions' spinning threads took the 2 cores from the one
          being timed (the 128×128 base at batch 1: median 19 ms with 4 sessions
          alternating vs 3.4 ms without spinning, on this machine).
        - **no spinning**: a pool per session with `session.intra_op.allow_spinning=0`, as
          for a deployment that turns spinning off to share its cores. Every op that
          onnxruntime spreads over the threads then wakes a sleeping thread (~10–20 µs on
          this machine), which weighs on small ops at batch 1.

        The goals table uses the first (onnxruntime's default) and gives the worst case of
        the second beside it. The latency sessions run in processes of their own (below);
        in the benchmark's own process the per-image loops, the conversion and the cold
        start run with spinning off, then the profiles in a global pool, spinning.
        TensorFlow is set to {THREADS} intra-op / 1 inter-op threads.

        Latency is the wall time of one `run` on a seeded random batch. For each (model,
        batch, dynamic/fixed, k) the base CNN and five ANAN variants (default options,
        `signal=post`, `reduce=max`; μ=2, a=1.05, b=0.30; and the default parameters
        converted with `scaling="broadcast"`, the final scaling as plain broadcast ops
        instead of onnxruntime's blocked layout, or with `fold_steps=True`, the k steps
        as one product for the final gains) run in rounds, each round running
        every model once in a rotating order, after {plan["warmup"]} warm-up round(s) in each
        set (2 at larger batches, where a fresh process still grows its buffers); the
        number of rounds fills a time budget ({plan["budget_b1_s"]:g} s at batch 1,
        {plan["budget_big_s"]:g} s at larger batches), clamped to
        {plan["min_rounds"]}–{plan["max_rounds_b1"]} rounds at batch 1 and
        {plan["min_rounds"]}–{plan["max_rounds_big"]} at larger batches. The budget is split
        among {plan["session_sets_b1"]} (batch 1) or {plan["session_sets_big"]} (larger
        batches) sets of sessions, each set created in a freshly spawned process (in a
        rotated order), as a deployment creates its session in a process of its own: where
        a session's buffers land in memory moves its times for its whole life (three
        sessions of the same base CNN in one process: up to 5 % apart at batch 1 on this
        machine), and sessions created again in the same process land alike (the ANAN /
        base ratio of the 128 model at batch 1, k = 4, spinning: 1.04–1.13, median 1.11,
        over 6 sets in one process; 1.04–1.11, median 1.04, over 6 processes, each
        with one set), so one set would make
        each ratio a draw of that placement. The sets run in passes, pass i timing set i
        of every group, so that minutes when other jobs press on the machine's memory and
        caches (they slow ANAN more than the base CNN, apparently its passes over the
        first layer's maps: a whole group at 1.13–1.16 while the others were at 1.05–1.08, in an
        earlier version that ran a group's sets back to back) fall on one set of many
        groups rather than on every set of one. "per process" gives each set's ratio of
        medians, in pass order. Times are medians over all sets
        with the interquartile range in brackets; a ratio is median(ANAN)/median(base) with
        the IQR of the per-round ratios (base and ANAN run in the same round, seconds apart).
        "fixed" means `convert_model(..., batch=N)` for ANAN and the base CNN's input and
        output batch axis set to N; "dynamic" is the default symbolic batch axis. "ratio of
        minima" is min(ANAN)/min(base), the least disturbed runs of each. "others' CPU %" is
        the share of the machine's CPU time (all cores, from `/proc/stat`, hypervisor steal
        included) that other processes used while the group's sets ran: above a few %, other jobs
        competed with the 2 threads measured and the figures of that group are disturbed.
        The goals table takes, for each figure, the worst case over models and k, from the
        ratio of medians.""")


def _threading_words(threading: str) -> str:
    if threading == "spinning":
        return "onnxruntime's default (idle threads spin), one global pool of 2 threads"
    return "a pool of 2 threads per session, idle threads sleep (spinning off)"


def report_latency(results: dict[str, Any]) -> str:
    """Section 1: one table per (model, batch)."""
    rows = results["latency"]
    text = ["## Latency: ANAN vs base CNN (onnxruntime)"]
    order = {t: i for i, t in enumerate(THREADINGS)}
    keys = sorted(
        {(r["model"], r["batch"], r.get("threading", "no spinning")) for r in rows},
        key=lambda t: (t[0], t[1], order[t[2]]),
    )
    for model, batch, threading in keys:
        group = [
            r
            for r in _pick(rows, model=model, batch=batch)
            if r.get("threading", "no spinning") == threading
        ]
        table = md_table(
            [
                "mode",
                "k",
                "ANAN options",
                "base ms",
                "ANAN ms",
                "ANAN / base [IQR per round]",
                "ratio of minima",
                "per process",
                "rounds",
                "others' CPU %",
            ],
            (
                (
                    r["mode"],
                    r["k"],
                    r["option"],
                    fmt_spread(r["base_s"]),
                    fmt_spread(r["anan_s"]),
                    fmt_ratio(r["ratio"], r["ratio_rounds"]),
                    f"{r['ratio_min']:.2f}",
                    " ".join(f"{v:.2f}" for v in r.get("set_ratios", [])),
                    r["rounds"],
                    f"{r['others_cpu_percent']:.0f}",
                )
                for r in group
            ),
        )
        text.append(f"### Model {model}, batch {batch}, threads {threading}\n\n{table}")
    return "\n\n".join(text)


def report_profile(results: dict[str, Any]) -> str:
    """Section 2: top nodes and op types of each profile, and the change from the base."""
    threading = next((p.get("threading") for p in results["profiles"]), None) or "no spinning"
    text = [
        "## Profile: where the time goes (onnxruntime profiler)",
        "Kernel time per run, summed per node and per op type over the profiled runs (after 2 "
        "warm-up runs; 10× more runs at batch 1). `anan/*` nodes are the astrocyte subgraph; "
        "everything else is the base network (in the base model onnxruntime fuses the first "
        "Conv with its Relu; `Reorder*` nodes convert to and from its blocked NCHWc layout). "
        "The profiler adds a little time per node, which shows at batch 1. Threads: "
        f"{_threading_words(threading)}.",
    ]
    for p in results["profiles"]:
        digits = 2 if p["kernel_ms"] >= 20 else 3
        head = (
            f"### {p['label']} ({p['mode']} batch {p['batch']}, model {p['model']}"
            f"{', k=' + str(p['k']) if p['label'] != 'base' else ''})\n\n"
            f"Run {p['run_ms']:.{digits}f} ms (median of {p['runs']}); kernels "
            f"{p['kernel_ms']:.{digits}f} ms; `anan/*` nodes {p['anan_nodes_ms']:.{digits}f} ms."
        )
        nodes = md_table(
            ["node", "op", "ms / run", "% of kernels"],
            (
                (
                    f"`{r['node']}`",
                    r["op"],
                    f"{r['ms']:.{digits}f}",
                    f"{100 * r['ms'] / p['kernel_ms']:.1f}",
                )
                for r in p["nodes"][:12]
            ),
        )
        ops = md_table(
            ["op type", "nodes", "ms / run", "% of kernels"],
            (
                (
                    r["op"],
                    r.get("nodes", ""),
                    f"{r['ms']:.{digits}f}",
                    f"{100 * r['ms'] / p['kernel_ms']:.1f}",
                )
                for r in p["ops"][:10]
            ),
        )
        text.append(f"{head}\n\nTop nodes:\n\n{nodes}\n\nBy op type:\n\n{ops}")
        base = next(
            (b for b in results["profiles"] if b["label"] == "base" and b["batch"] == p["batch"]),
            None,
        )
        if base is not None and p is not base:
            delta = profile_delta(base, p, digits)
            text.append("Against the base CNN's profile (same batch), by op type:\n\n" + delta)
    return "\n\n".join(text)


def profile_delta(base: dict[str, Any], anan: dict[str, Any], digits: int = 2) -> str:
    """Op types whose kernel time changed by more than 0.2 % of the base's, largest first."""
    before = {r["op"]: r["ms"] for r in base["ops"]}
    after = {r["op"]: r["ms"] for r in anan["ops"]}
    change = {op: after.get(op, 0.0) - before.get(op, 0.0) for op in set(before) | set(after)}
    threshold = 0.002 * base["kernel_ms"]
    rows = [
        (
            op,
            f"{before.get(op, 0):.{digits}f}",
            f"{after.get(op, 0):.{digits}f}",
            f"{change[op]:+.{digits}f}",
        )
        for op in sorted(change, key=lambda op: -change[op])
        if abs(change[op]) > threshold
    ]
    total = anan["kernel_ms"] - base["kernel_ms"]
    rows.append(
        (
            "**all kernels**",
            f"{base['kernel_ms']:.{digits}f}",
            f"{anan['kernel_ms']:.{digits}f}",
            f"{total:+.{digits}f}",
        )
    )
    return md_table(["op type", "base ms", "this ms", "Δ ms"], rows)


def report_loops(results: dict[str, Any]) -> str:
    """Section 3: the per-image procedures against the ANAN graph."""
    rows = results["loops"]
    n = rows[0]["images"] if rows else 0
    text = [
        "## Per-image loops: the paper's procedure vs the ANAN graph",
        "Per image: back up the first conv's weights, k forward passes of the whole network "
        "with `set_weights` between them (kernel means of the first conv's output, counters, "
        "multiplicative update in numpy), predict, restore. TF eager calls the Keras model "
        "directly; tf.function compiles the same two callables (traced once on a warm-up "
        "image; `set_weights` updates the captured variables in place). The onnxruntime literal "
        "loop is `LiteralReference.run` (weights fed as an input, k + 1 runs per image; its "
        "own session, default threads, spinning on). "
        f"Image by image ({n} images after one warm-up image), each procedure runs once, in a "
        f"rotating order and after a {LOOP_PAUSE_S * 1e3:.0f} ms pause (so that no other "
        "session's threads are still spinning), next to one ANAN run at batch 1 and one at "
        "the large batch (default "
        "options, dynamic batch; its time divided by the batch size), so every ratio compares "
        "runs taken seconds apart. Times are ms per image, median [IQR]. 'max |Δ|' is the "
        "largest difference of a loop's output from the ANAN graph's on the same image. "
        "The base CNN alone at the large batch runs alongside too: its speed-up over a loop "
        "bounds what any ANAN graph (which runs the base network once, plus the astrocytes) "
        "can reach.",
    ]
    if not rows:
        return "\n\n".join(text)
    labels = {
        "ort_literal": "onnxruntime literal loop",
        "tf_eager": "TF eager loop",
        "tf_function": "TF tf.function loop",
    }
    table_rows = []
    for r in rows:
        big, b1 = r.get("anan_big_s"), r["anan_b1_s"]
        for key, label in labels.items():
            if f"{key}_s" not in r:
                continue
            s = r[f"{key}_s"]
            table_rows.append(
                (
                    r["model"],
                    r["k"],
                    label,
                    fmt_spread(s),
                    f"{1 / s['median']:.1f}",
                    f"{s['median'] / big['median']:.1f}×" if big else "–",
                    f"{s['median'] / r['base_big_s']['median']:.1f}×" if big else "–",
                    f"{s['median'] / b1['median']:.1f}×",
                    f"{r[f'{key}_maxdiff']:.1e}",
                    f"{r['others_cpu_percent']:.0f}",
                )
            )
        anan_rows = [("ANAN batch 1", b1)]
        if big:
            anan_rows.append((f"ANAN batch {r['anan_batch']} (per image)", big))
            anan_rows.append((f"base CNN batch {r['anan_batch']} (per image)", r["base_big_s"]))
        for label, s in anan_rows:
            table_rows.append(
                (r["model"], r["k"], label, fmt_spread(s), f"{1 / s['median']:.0f}", *[""] * 5)
            )
    table = md_table(
        [
            "model",
            "k",
            "procedure",
            "ms / image",
            "images/s",
            "ANAN large batch speed-up",
            "base CNN large batch speed-up (bound)",
            "ANAN batch 1 speed-up",
            "max |Δ| vs ANAN",
            "others' CPU %",
        ],
        table_rows,
    )
    if not any("tf_eager_s" in r for r in rows):
        table += "\n\nTensorFlow loops skipped (--no-tf)."
    return "\n\n".join([*text, table])


def report_conversion(results: dict[str, Any]) -> str:
    """Section 4."""
    c = results.get("conversion")
    head = "## Conversion time"
    if not c:
        return head + "\n\nNot measured."
    rows = [
        (
            f"`convert_file` in a warm process, {c['source']} → ANAN ONNX",
            fmt_spread(c["warm_s"], 1),
            c["warm_s"]["n"],
        )
    ]
    if "fresh_process_s" in c:
        rows.append(
            (
                "`anan-onnx convert` in a fresh process (incl. Python + TF import)",
                f"{c['fresh_process_s']:.2f}",
                1,
            )
        )
    note = (
        f"Model {c['model']}; default parameters; the base ONNX model is written too. The warm "
        "process has converted once before (imports done"
        + (", TensorFlow and tf2onnx loaded)." if c["source"] == ".keras" else ").")
    )
    return f"{head}\n\n{note}\n\n" + md_table(["what", "seconds, median [IQR]", "runs"], rows)


def report_cold(results: dict[str, Any]) -> str:
    """Section 5."""
    c = results.get("cold_start")
    head = "## Cold start and peak RSS of an inference process"
    if not c:
        return head + "\n\nNot measured."
    rows = []
    n = next(iter(c["variants"].values()))["external_s"]["n"]
    for label, e in c["variants"].items():
        rows.append(
            (
                label,
                fmt_spread(e["external_s"], 1),
                fmt_spread(e["internal_s"], 1),
                f"{e['import_s']['median']:.2f}",
                f"{e['load_s']['median']:.2f}",
                f"{e['predict_s']['median']:.3f}",
                f"{e['rss_import_mb']['median']:.0f}",
                f"{e['rss_load_mb']['median']:.0f}",
                fmt_spread(e["maxrss_mb"], 1),
                f"{e['vmhwm_mb']['median']:.0f}",
                "yes" if e["tf_loaded"] else "no",
            )
        )
    note = (
        f"A fresh `python` process per run: imports, creates the session (or loads the Keras "
        f"model), predicts one {c['model']} image (batch {c['batch']}), prints its timings and "
        "`ru_maxrss` (started through `/bin/sh` so that it does not inherit the benchmark "
        "process's high-water mark; `VmHWM`, the kernel's own peak, is shown beside it). "
        "'outside' is the wall time of the whole process measured by the parent "
        "(interpreter start-up and exit included); 'inside' runs from the first line of the "
        "script to the prediction; the RSS columns are `ru_maxrss` after each stage. Runs "
        f"alternate between the two kinds, after one warm-up run each; median [IQR] of {n}. "
        f"Other processes used {c['others_cpu_percent']:.0f} % of the machine's CPU time "
        "meanwhile."
    )
    table = md_table(
        [
            "process",
            "outside s",
            "inside s",
            "import s",
            "session/model s",
            "first predict s",
            "RSS after import MB",
            "after load MB",
            "peak RSS MB",
            "VmHWM MB",
            "TF loaded",
        ],
        rows,
    )
    return f"{head}\n\n{note}\n\n{table}"
