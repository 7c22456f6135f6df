"""What the runtimes share: the source checkout, locks, child processes, npm installs.

The C++, Node.js and browser runtimes build or install the examples of a source checkout
(examples/cpp, examples/node, examples/web); a missing tool is reported as
:class:`RuntimeUnavailable`, one line that says how to install it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np

from anan_onnx.errors import AnanError

__all__ = [
    "MIN_NODE",
    "Closing",
    "RuntimeUnavailable",
    "example_dir",
    "json_rows",
    "locked",
    "npm_ci",
    "repo_root",
    "tail",
]

MIN_NODE = 18

_C = TypeVar("_C", bound="Closing")


class RuntimeUnavailable(AnanError):
    """A runtime cannot run here (a tool or package is missing); the message says the fix."""


class Closing:
    """A context manager that calls the subclass's ``close()`` on exit, error or not."""

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


def repo_root() -> Path:
    """The source checkout this package was imported from (it holds examples/)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "examples").is_dir():
        raise RuntimeUnavailable(
            f"{root} has no examples/ folder: run the conformance runtimes from a source "
            "checkout of anan-onnx (git clone, then pip install -e .)"
        )
    return root


def example_dir(name: str) -> Path:
    """examples/<name> of the source checkout."""
    return repo_root() / "examples" / name


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialises a build or install step between concurrent processes (pytest workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail(proc: subprocess.CompletedProcess[str], lines: int = 25) -> str:
    """The last lines of a finished process's output, for failure messages."""
    text = (proc.stdout or "") + (proc.stderr or "")
    return "\n".join(text.strip().splitlines()[-lines:])


def json_rows(stdout: str) -> np.ndarray:
    """The examples' ``--json`` output (an array of arrays, null for a non-finite value)."""
    rows = json.loads(stdout)
    return np.array([[np.nan if v is None else v for v in row] for row in rows], np.float64)


def node_and_npm() -> tuple[str, str]:
    """Paths of node (>= MIN_NODE) and npm; RuntimeUnavailable when missing or too old."""
    node, npm = shutil.which("node"), shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    if node is None or npm is None:
        raise RuntimeUnavailable(
            f"{' and '.join(missing)} not on PATH: install Node.js >= {MIN_NODE} with npm "
            "(e.g. apt-get install nodejs npm)"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=60)
    match = re.match(r"v(\d+)\.", version.stdout.strip())
    if version.returncode != 0 or not match:
        raise RuntimeUnavailable(f"`node --version` failed: {tail(version, 3)}")
    if int(match.group(1)) < MIN_NODE:
        raise RuntimeUnavailable(
            f"Node.js >= {MIN_NODE} is needed, found {version.stdout.strip()}: upgrade Node.js"
        )
    return node, npm


def _installed_version(folder: Path, package: str) -> str | None:
    try:
        manifest = folder / "node_modules" / package / "package.json"
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def npm_ci(folder: Path, package: str) -> None:
    """Installs ``folder``'s package-lock.json with ``npm ci`` unless ``package`` is there
    at the version package.json pins (node_modules/ is gitignored; later calls are free)."""
    _, npm = node_and_npm()
    pinned = json.loads((folder / "package.json").read_text())["dependencies"][package]
    with locked(repo_root() / "build" / f".npm_{folder.name}.lock"):
        if _installed_version(folder, package) == pinned:
            return
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=folder,
            env={**os.environ, "npm_config_update_notifier": "false"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise RuntimeUnavailable(f"`npm ci` in {folder} failed:\n{tail(proc)}")
        found = _installed_version(folder, package)
        if found != pinned:
            raise RuntimeUnavailable(
                f"`npm ci` in {folder} did not install {package} {pinned} (found {found})"
            )
