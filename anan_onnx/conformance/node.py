"""Runtime: onnxruntime-node, through the Node.js example (examples/node/anan_infer.mjs).

:func:`install` runs ``npm ci`` in examples/node on first use (the committed
package-lock.json, into its gitignored node_modules/); :func:`run` writes the batch as a
``.npy`` file and reads the program's ``--json`` output.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from anan_onnx.conformance._process import (
    RuntimeUnavailable,
    example_dir,
    json_rows,
    node_and_npm,
    npm_ci,
    tail,
)

__all__ = ["Node", "install", "script"]

PACKAGE = "onnxruntime-node"


def script() -> Path:
    """examples/node/anan_infer.mjs."""
    return example_dir("node") / "anan_infer.mjs"


def install() -> str:
    """Installs examples/node's dependencies when needed; returns the node executable."""
    node, _ = node_and_npm()
    npm_ci(example_dir("node"), PACKAGE)
    return node


def infer(node: str, *args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs ``node anan_infer.mjs ARGS...``."""
    return subprocess.run(
        [node, str(script()), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


class Node:
    """onnxruntime-node (CPU): one ``node`` process per run."""

    name = "node"

    def __init__(self) -> None:
        self._node = install()
        self._folder = tempfile.TemporaryDirectory(prefix="anan_node_")

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        npy = Path(self._folder.name) / "batch.npy"
        np.save(npy, np.ascontiguousarray(batch, np.float32))
        proc = infer(self._node, "--json", "-q", model, npy)
        if proc.returncode != 0:
            raise RuntimeUnavailable(f"anan_infer.mjs failed on {Path(model).name}:\n{tail(proc)}")
        return json_rows(proc.stdout)

    def close(self) -> None:
        self._folder.cleanup()
