"""The conformance matrix: every runtime x graph variant x model equals the literal loop.

Each cell runs one ANAN model (see conformance_cases.py: the bundled Keras CNN and three
generated CNNs, each in six graph variants) on one runtime (anan_onnx.conformance: Python
CPU, the ORT format, Node.js, C++, onnxruntime-web WASM and WebGPU in headless Chromium)
and checks that

* its output equals the spec's literal per-image loop within 1e-5, and
* it differs from the base model's output on every image where the reference does, so a
  runtime that silently drops the modulation (returns the base CNN's output) cannot pass.

Runtimes that are missing a tool fail with the install command (they do not skip): every
one of them is a runtime the README claims. With ``ANAN_CONFORMANCE_REPORT=DIR`` each cell
also writes its figures to DIR (tools/conformance_report.py renders docs/deployment.md).

Cost: each model variant is converted once and each runtime started once per session (one
browser for both web backends); WebGPU on SwiftShader (a CPU Vulkan) dominates the time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from anan_onnx.conformance import RUNTIMES, Runtime, RuntimeUnavailable, open_runtime

from conformance_cases import GRAPH_VARIANTS, MODELS, TOLERANCE, Case, base_model, compare
from conformance_cases import make_case as _make_case

REPORT = os.environ.get("ANAN_CONFORMANCE_REPORT")


# --- runtimes, started once per session ----------------------------------------------------


class _Started:
    """Runtimes started on first use; a runtime that cannot start fails its cells."""

    def __init__(self) -> None:
        self.runtimes: dict[str, Runtime] = {}
        self.failures: dict[str, str] = {}

    def get(self, name: str, request: pytest.FixtureRequest) -> Runtime:
        if name in self.failures:
            pytest.fail(self.failures[name])
        if name not in self.runtimes:
            # the session's one browser (conftest.py), started only when a web cell runs
            browser = request.getfixturevalue("web_browser") if "web" in name else None
            try:
                self.runtimes[name] = open_runtime(name, browser)
            except RuntimeUnavailable as exc:
                self.failures[name] = f"{name}: {exc}"
                pytest.fail(self.failures[name])
        return self.runtimes[name]

    def close(self) -> None:
        for runtime in self.runtimes.values():
            runtime.close()


@pytest.fixture(scope="session")
def started() -> Iterator[_Started]:
    started = _Started()
    yield started
    started.close()


# --- cases, converted once per session -----------------------------------------------------


@pytest.fixture(scope="session")
def cases(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("conformance")
    bases: dict[str, object] = {}
    made: dict[tuple[str, str], Case] = {}

    def get(model: str, variant: str) -> Case:
        if (model, variant) not in made:
            if model not in bases:
                bases[model] = base_model(model)
            made[model, variant] = _make_case(model, variant, folder, bases[model])  # type: ignore[arg-type]
        return made[model, variant]

    return get


def _model_params() -> list:
    # the bundled model is converted from Keras: it needs TensorFlow
    return [pytest.param(m, marks=pytest.mark.keras) if m == "catsdogs" else m for m in MODELS]


# --- the matrix ----------------------------------------------------------------------------


def _record(case: Case, runtime: str, **figures: object) -> None:
    if not REPORT:
        return
    folder = Path(REPORT)
    folder.mkdir(parents=True, exist_ok=True)
    row = {"runtime": runtime, "model": case.model, "variant": case.variant, **figures}
    name = f"{runtime}__{case.model}__{case.variant}.json"
    (folder / name).write_text(json.dumps(row, allow_nan=False))


@pytest.mark.parametrize("variant", list(GRAPH_VARIANTS))
@pytest.mark.parametrize("model", _model_params())
def test_inputs_exercise_the_astrocytes(cases, model: str, variant: str) -> None:
    """Each case is meaningful: the reference differs from the base model on some image,
    and at least two of the three images are free of near-ties."""
    case = cases(model, variant)
    assert case.modulated.any(), "the astrocytes change no output on this batch"
    assert (~case.near_tie).sum() >= 2, f"near-ties: {case.near_tie}"


@pytest.mark.parametrize("variant", list(GRAPH_VARIANTS))
@pytest.mark.parametrize("model", _model_params())
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtime_matches_reference(
    started: _Started,
    cases,
    runtime: str,
    model: str,
    variant: str,
    request: pytest.FixtureRequest,
) -> None:
    case = cases(model, variant)
    engine = started.get(runtime, request)
    try:
        outputs = engine.run(case.path, case.batch)
    except Exception as exc:
        _record(case, runtime, error=str(exc).splitlines()[0][:200])
        raise
    result = compare(case, outputs)
    _record(
        case,
        runtime,
        max_abs_diff=result.max_abs_diff if np.isfinite(result.max_abs_diff) else None,
        differs=result.differs,
        modulated=result.modulated,
        passed=result.passed,
    )
    assert result.shape_ok, f"output shape {np.shape(outputs)} != {case.reference.shape}"
    assert result.modulated > 0, "vacuous case: the reference equals the base model"
    base_diff = float(np.abs(np.asarray(outputs, np.float64) - case.base).max())
    assert result.differs == result.modulated, (
        f"{runtime} returns the base model's output on {result.modulated - result.differs} "
        f"of {result.modulated} modulated images (max |out - base| {base_diff:.3g}): "
        "the modulation was dropped"
    )
    assert result.max_abs_diff <= TOLERANCE, (
        f"max abs diff vs the literal reference {result.max_abs_diff:.3g} > {TOLERANCE}"
    )


@pytest.mark.parametrize("model", ["plain", "depthwise"])
def test_check_rejects_a_runtime_that_drops_the_modulation(cases, model: str) -> None:
    """The base model's own output (what a runtime ignoring the astrocytes returns) fails,
    and so does a reference perturbed beyond the tolerance; the reference itself passes."""
    case = cases(model, "default")
    assert not compare(case, case.base).passed
    assert not compare(case, case.reference + 3 * TOLERANCE).passed
    assert compare(case, case.reference).passed
