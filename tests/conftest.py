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
