"""What was measured where: machine, versions, the code (working tree or a commit), the command."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import platform
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from benchmarks.bench.config import PROG, REPO_ROOT


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, RAM, load average."""
    cpu = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem: dict[str, float] = {}
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                mem[key] = int(value.split()[0]) / 1024**2
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "ram_gib": round(mem.get("MemTotal", 0.0), 1),
        "available_gib_at_start": round(mem.get("MemAvailable", 0.0), 1),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
    }


def versions(use_tf: bool) -> dict[str, str]:
    """Versions of python and the libraries involved (TF read from metadata, not imported)."""
    result = {"python": platform.python_version()}
    names = ["numpy", "onnxruntime", "onnx", "onnx-ir", "anan-onnx"]
    names += ["tensorflow", "tensorflow-cpu", "keras", "tf2onnx"]
    for name in names:
        try:
            result[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    if "tensorflow" not in result and "tensorflow-cpu" in result:
        result["tensorflow"] = result.pop("tensorflow-cpu")
    result.pop("tensorflow-cpu", None)
    if not use_tf:
        result["note"] = "--no-tf: TensorFlow not imported"
    return result


def git(*args: str) -> str:
    """Output of a git command in the repository ('?' if it fails)."""
    proc = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "?"


def use_git_ref(ref: str, tmp: Path) -> str:
    """Puts ``anan_onnx`` as committed at ``ref`` first on the import path (this process and
    its children); returns the full commit id. Must run before anything imports anan_onnx."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    if sha == "?":
        raise SystemExit(f"{PROG}: error: --git-ref {ref!r} is not a commit")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", sha, "anan_onnx"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    code = tmp / "code"
    code.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(code, filter="data")
        else:
            tar.extractall(code)  # our own repository's archive
    sys.path.insert(0, str(code))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(code), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    import anan_onnx

    assert Path(anan_onnx.__file__).is_relative_to(code), anan_onnx.__file__
    return sha


#: what the report names as the rewrite's code: its commit and a hash of its files
REWRITE = "anan_onnx/rewrite"


def code_state(ref_sha: str | None) -> dict[str, str]:
    """Which anan_onnx was measured: a commit (``--git-ref``) or the working tree, with the
    last commit of the rewrite and, for the working tree, its uncommitted changes."""
    import anan_onnx

    package = Path(anan_onnx.__file__).parent
    digest = hashlib.sha256()
    for path in sorted((package / "rewrite").rglob("*.py")):  # the rewrite sub-package
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    at = ref_sha or "HEAD"
    state = {
        "head": git("log", "-1", "--format=%h %cI %s"),
        "measured": f"commit {ref_sha[:7]} (git archive)" if ref_sha else "working tree",
        "package_dir": str(package),
        "rewrite_commit": git("log", "-1", "--format=%h %cI %s", at, "--", REWRITE),
        "rewrite_sha256": digest.hexdigest()[:12],
    }
    if not ref_sha:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "anan_onnx"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout
        state["anan_onnx_modified"] = ", ".join(line[3:] for line in dirty.splitlines()) or "no"
    return state


def command_line() -> str:
    """The command that produced the report, relative to the repository root if possible."""
    exe = Path(sys.executable)
    python = str(exe.relative_to(REPO_ROOT)) if exe.is_relative_to(REPO_ROOT) else "python"
    return shlex.join([python, "-m", "benchmarks.bench", *sys.argv[1:]])
