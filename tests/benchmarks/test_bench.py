"""Smoke test of the benchmark (``python -m benchmarks.bench``): a tiny run without TensorFlow
writes the full report; the ablation's stand-ins (``benchmarks.bench.ablate``) keep a valid graph.

Nothing here depends on timing values: only that every section and goal row is produced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.bench import ablate, models, profile, sessions
from benchmarks.bench.config import MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = [sys.executable, "-m", "benchmarks.bench"]
SECTIONS = (
    "# Benchmarks: ANAN at the cost of the base CNN",
    "## Goals",
    "## Method",
    "## Latency: ANAN vs base CNN (onnxruntime)",
    "### Model tiny, batch 1",
    "### Model tiny, batch 64",
    "## Profile: where the time goes (onnxruntime profiler)",
    "## Per-image loops: the paper's procedure vs the ANAN graph",
    "## Conversion time",
    "## Cold start and peak RSS of an inference process",
)


def _bench(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """The benchmark's command line, run from the repository root as documented."""
    return subprocess.run(
        [*BENCH, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench")
    report, raw = out / "BENCHMARKS.md", out / "results.json"
    flags = ["--quick", "--no-tf", "--models", "tiny"]
    proc = _bench(*flags, "--out", str(report), "--json", str(raw), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return report.read_text(encoding="utf-8"), json.loads(raw.read_text(encoding="utf-8"))


def test_help():
    proc = _bench("--help", timeout=60)
    assert proc.returncode == 0
    for flag in ("--quick", "--no-tf", "--out", "--json", "--models"):
        assert flag in proc.stdout


def test_bad_model_name_is_refused():
    proc = _bench("--models", "999", timeout=60)
    assert proc.returncode == 2
    assert "unknown model" in proc.stderr


def test_report_has_every_section(tiny_run):
    text, _ = tiny_run
    positions = [text.find(section) for section in SECTIONS]
    missing = [section for section in SECTIONS if section not in text]
    assert not missing
    assert positions == sorted(positions)
    assert "-m benchmarks.bench --quick --no-tf --models tiny" in text  # the command is recorded
    for figure in (
        "ANAN / base latency, batch 64, fixed batch",
        "ANAN / base latency, batch 64, dynamic batch",
        "ANAN / base latency, batch 1 (fixed and dynamic)",
        "ANAN / base, batch 64, signal=post or reduce=max",
        "inference process without TF: cold start, peak RSS",
        "conversion of the tiny model",
    ):
        assert f"| {figure} |" in text
    assert "TensorFlow loops skipped (--no-tf)" in text


def test_raw_results_cover_the_matrix(tiny_run):
    _, raw = tiny_run
    assert raw["tensorflow_imported"] is False
    configs = {(r["batch"], r["mode"], r["option"], r["threading"]) for r in raw["latency"]}
    assert configs == {
        (b, m, o, t)
        for b in (1, 64)
        for m in ("dynamic", "fixed")
        for o in ("default", "signal=post", "reduce=max", "scaling=broadcast", "fold_steps")
        for t in ("spinning", "no spinning")
    }
    for row in raw["latency"]:
        assert len(row["base_raw_s"]) == len(row["anan_raw_s"]) == row["rounds"] >= 2
        assert row["session_sets"] == len(row["set_ratios"]) == 2  # a process per set
        assert all(r > 0 for r in row["set_ratios"])
    assert {p["label"] for p in raw["profiles"]} == {"base", "default"}
    assert {p["threading"] for p in raw["profiles"]} == {"spinning"}  # onnxruntime's default
    assert any(n["node"].startswith("anan/") for n in raw["profiles"][1]["nodes"])
    loop = raw["loops"][0]
    assert loop["ort_literal_maxdiff"] < 1e-4  # the literal loop computes what the graph does
    cold = raw["cold_start"]["variants"]["anan_onnx (no TF), ANAN model"]
    assert cold["tf_loaded"] is False


def test_profile_summary_counts_only_the_last_runs():
    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},
        {"cat": "Node", "name": "a_kernel_time", "ts": 10, "dur": 999, "args": {"op_name": "Conv"}},
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
        {"cat": "Node", "name": "a_kernel_time", "ts": 210, "dur": 40, "args": {"op_name": "Conv"}},
        {
            "cat": "Node",
            "name": "anan/m_kernel_time",
            "ts": 260,
            "dur": 20,
            "args": {"op_name": "Mul"},
        },
        {"cat": "Node", "name": "anan/m_fence_before", "ts": 259, "dur": 5, "args": {}},
    ]
    summary = profile.summarise_profile(events, runs=1)
    assert summary["runs"] == 1
    assert [(n["node"], n["op"]) for n in summary["nodes"]] == [("a", "Conv"), ("anan/m", "Mul")]
    assert summary["kernel_ms"] == pytest.approx(0.06)
    assert summary["anan_nodes_ms"] == pytest.approx(0.02)


def test_session_sets_run_in_a_process_of_their_own():
    assert sessions.in_fresh_process(os.getpid) != os.getpid()


def test_fixed_batch_sets_only_the_batch_axis():
    model = models.build_onnx(MODELS["tiny"], seed=0)
    fixed = models.fixed_batch(model, 5)
    dims = [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [5, 32, 32, 3]
    assert fixed.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 5
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_ablation_stand_ins_take_out_the_steps_then_the_scaling(tmp_path):
    graphs = ablate.ablated_models(MODELS["tiny"], k=4, tmp=tmp_path)
    names = {key: {n.name for n in m.graph.node} for key, m in graphs.items()}
    assert any(n.startswith("anan/step") for n in names["anan"])
    assert not any(n.startswith("anan/step") for n in names["no steps"])
    assert f"{ablate.SCALING}/gain_map" in names["no steps"]
    assert f"{ablate.SCALING}/gain_map" not in names["no steps, no scaling"]
    assert f"{ablate.SCALING}/shifted" in names["no steps, no scaling"]  # the bias stays
    x = models.images(MODELS["tiny"], 3, seed=1)
    outputs = {}
    for key, model in graphs.items():
        used = {i for n in model.graph.node for i in n.input}
        assert {i.name for i in model.graph.initializer} <= used  # nothing left dangling
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        outputs[key] = session.run(None, {"image": x})[0]
    # the stand-ins are different graphs, not the ANAN model under another name
    assert not np.allclose(outputs["no steps, no scaling"], outputs["anan"])
