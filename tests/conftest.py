"""Fixtures shared across test files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from process_helpers import tail

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "models" / "catsdogs_cnn.keras"


@pytest.fixture(scope="session")
def anan_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Keras CNN converted once per session by the ``anan-onnx convert`` CLI."""
    out = tmp_path_factory.mktemp("bundled") / "model.anan.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "anan_onnx", "convert", str(BUNDLED_MODEL), "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0 or not out.is_file():
        pytest.fail(f"anan-onnx convert {BUNDLED_MODEL.name} failed:\n{tail(proc)}")
    return out


@pytest.fixture(scope="session")
def web_browser():
    """Headless Chromium with onnxruntime-web (anan_onnx.conformance.web), started once.

    Fails (does not skip) with the install command when Playwright or Chromium is missing.
    """
    from anan_onnx.conformance import RuntimeUnavailable
    from anan_onnx.conformance.web import Browser

    try:
        browser = Browser()
    except RuntimeUnavailable as exc:
        pytest.fail(f"the browser tests need Playwright and Chromium: {exc}")
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster for the whole test session: 2 CPUs, no dashboard, loopback only.

    Ray is a test dependency (the ``dev`` extra); started once because a start costs
    seconds, shut down when the session ends.
    """
    import ray

    ray.init(
        address="local",  # a cluster of its own, even when another one runs on the machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    yield ray
    ray.shutdown()


# Tests that need tools outside Python carry a marker, so that a machine without them can
# run the rest: pytest -m "not cpp and not node and not browser" (tools/test.sh installs
# them). Files and conformance runtimes are marked here, so that new ones are covered too.
_FILE_MARKS = {"test_cpp_": ("cpp",), "test_node_": ("node",), "test_web_": ("browser", "node")}
_RUNTIME_MARKS = {
    "cpp": ("cpp",),
    "node": ("node",),
    "web": ("browser", "node"),
    "openvino": ("integration",),
    "tract": ("integration",),
    "litert": ("litert",),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marks = [m for prefix, ms in _FILE_MARKS.items() if item.path.name.startswith(prefix)
                 for m in ms]  # fmt: skip
        callspec = getattr(item, "callspec", None)
        runtime = str(callspec.params.get("runtime", "")) if callspec else ""
        marks += [m for prefix, ms in _RUNTIME_MARKS.items() if runtime.startswith(prefix)
                  for m in ms]  # fmt: skip
        if "web_browser" in getattr(item, "fixturenames", ()):  # runs headless Chromium
            marks += ["browser", "node"]
        for name in dict.fromkeys(marks):
            item.add_marker(name)
    # The long property runs only when asked for (-m slow): an -m of one's own, such as the
    # quick run's, does not bring them in (a plain addopts -m would be replaced by it).
    if "slow" not in (config.option.markexpr or ""):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]
