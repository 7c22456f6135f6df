"""benchmarks/ort_session.py is the one onnxruntime session set-up of the benchmarks: each
setting changes only its own option (so a script keeps the options it had before the copies
were merged), the session it opens runs, and no benchmark script builds sessions itself."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from anan_onnx.testing import build_base_cnn
from benchmarks.ort_session import QUIET, open_session, session_options

REPO = Path(__file__).resolve().parents[2]
SEQ, ALL = ort.ExecutionMode.ORT_SEQUENTIAL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL
SPIN = "session.intra_op.allow_spinning"


def state(options: ort.SessionOptions) -> dict[str, object]:
    """The options the benchmarks set, as values that compare."""
    return {
        "intra": options.intra_op_num_threads,
        "inter": options.inter_op_num_threads,
        "mode": options.execution_mode,
        "level": options.graph_optimization_level,
        "log": options.log_severity_level,
        "profiling": options.enable_profiling,
        "prefix": options.profile_file_prefix,
        "per_session": options.use_per_session_threads,
        "spinning": _config_entry(options, SPIN),
    }


def _config_entry(options: ort.SessionOptions, key: str) -> str | None:
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # onnxruntime raises for a key never set
        return None


DEFAULT = state(ort.SessionOptions())


def test_no_setting_leaves_onnxruntime_defaults():
    assert state(session_options()) == DEFAULT


@pytest.mark.parametrize(
    ("settings", "changed"),
    [
        ({"threads": 3}, {"intra": 3}),
        ({"inter_threads": 2}, {"inter": 2}),
        ({"sequential": True}, {"mode": SEQ}),
        ({"spinning": False}, {"spinning": "0"}),
        ({"spinning": True}, {}),  # onnxruntime's default: nothing set
        ({"global_pool": True}, {"per_session": False}),
        ({"optimization_all": True}, {"level": ALL}),
        ({"quiet": True}, {"log": QUIET}),
        ({"profile": True}, {"profiling": True}),
        ({"profile_prefix": "/tmp/p"}, {"profiling": True, "prefix": "/tmp/p"}),
    ],
)
def test_each_setting_changes_only_its_option(settings, changed):
    assert state(session_options(**settings)) == {**DEFAULT, **changed}


def test_open_session_runs_a_model_from_bytes_and_from_a_path(tmp_path):
    model = build_base_cnn(16, 3, (4,), dense=8)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    outputs = []
    for source in (model.SerializeToString(), path):
        session = open_session(source, threads=1, inter_threads=1, sequential=True, quiet=True)
        assert session.get_providers() == ["CPUExecutionProvider"]
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    assert outputs[0].shape == (2, 1)
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_open_session_refuses_options_and_settings_together(tmp_path):
    with pytest.raises(TypeError, match="either options or settings"):
        open_session(b"", session_options(), threads=1)


def _session_calls(path: Path) -> list[str]:
    """``SessionOptions(...)`` / ``InferenceSession(...)`` calls in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in ("SessionOptions", "InferenceSession"):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    return found


def test_no_benchmark_sets_up_its_own_session():
    scripts = sorted((REPO / "benchmarks").rglob("*.py"))
    assert len(scripts) > 10  # the folder was found
    own = REPO / "benchmarks" / "ort_session.py"
    calls = [c for p in scripts if p != own for c in _session_calls(p)]
    assert calls == [], f"use benchmarks.ort_session.open_session instead: {calls}"
    assert _session_calls(own)  # the scan sees calls where there are some
