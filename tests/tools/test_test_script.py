"""tools/test.sh installs what the tests need where it is missing, and nothing else.

Run with a PATH that holds none of the tools and a stand-in ``apt-get`` that records its
calls, and with this interpreter's environment as the venv (ANAN_VENV), so that nothing is
installed for real; pytest itself only prints its version.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "test.sh"

pytestmark = pytest.mark.keras  # the script checks that the venv holds TensorFlow


def run_script(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("dirname", "env"):  # what the script needs besides bash's builtins
        target = bin_dir / tool
        if not target.exists():
            target.symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    log = tmp_path / "apt.log"
    apt = bin_dir / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    apt.chmod(0o755)
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "ANAN_VENV": sys.prefix,
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "ANAN_LITERT_PYTHON": sys.executable,  # named: the LiteRT environment is not made
    }
    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), "--version", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, log.read_text() if log.exists() else ""


AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="the install branch runs as root here")


@AS_ROOT
def test_installs_the_missing_tools_with_one_apt_update(tmp_path):
    proc, apt = run_script(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pytest" in proc.stdout + proc.stderr  # pytest ran with the script's arguments
    calls = apt.splitlines()
    assert calls[0] == "update -qq" and len(calls) == 2
    installed = calls[1].split()
    assert {"cmake", "g++", "nodejs", "npm", "chromium"} <= set(installed)
    assert "installing cmake g++ nodejs npm chromium with apt-get" in proc.stderr


def test_a_quick_run_installs_nothing(tmp_path):
    proc, apt = run_script(tmp_path, "-m", "not cpp and not node and not browser")
    assert proc.returncode == 0, proc.stderr
    assert apt == "" and "installing" not in proc.stderr


@AS_ROOT
def test_only_what_the_selected_markers_need(tmp_path):
    proc, apt = run_script(tmp_path, "-m", "not node and not browser")
    assert proc.returncode == 0, proc.stderr
    assert apt.splitlines()[1].split()[-2:] == ["cmake", "g++"]
