"""What the browser runtime says when Playwright or Chromium is missing: one line with the
command that installs it (the browser tests then fail with it; they never skip)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from anan_onnx.conformance import RuntimeUnavailable
from anan_onnx.conformance.web import Browser, StaticServer


def test_missing_chromium_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANAN_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    with pytest.raises(RuntimeUnavailable) as info:
        Browser()
    message = str(info.value)
    assert "\n" not in message
    assert "apt-get install chromium" in message


def test_chromium_override_must_be_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANAN_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(RuntimeUnavailable, match=r"ANAN_CHROMIUM=/nonexistent/chromium .*"):
        Browser()


def test_missing_playwright_says_how_to_install() -> None:
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "playwright":
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
from anan_onnx.conformance import RuntimeUnavailable
from anan_onnx.conformance.web import Browser
try:
    Browser()
except RuntimeUnavailable as exc:
    print(exc)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [
        "Playwright is not installed: pip install 'anan-onnx[browser]' (Playwright for Python)"
    ]


def test_server_listens_on_loopback_only(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    server = StaticServer(tmp_path)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server._server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(server.url + "/a.txt", timeout=10) as response:
            assert response.read() == b"hello"
        published = server.publish(tmp_path / "a.txt", "model.onnx")
        with urllib.request.urlopen(server.url + published, timeout=10) as response:
            assert response.read() == b"hello"
    finally:
        server.close()
