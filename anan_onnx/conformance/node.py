"""Runtime: onnxruntime-node, through the Node.js example (examples/node/anan_infer.mjs).

:func:`install` runs ``npm ci`` in examples/node on first use (the committed
package-lock.json, into its gitignored node_modules/); :meth:`Node.run` writes the batch as a
``.npy`` file and reads the program's ``--json`` output; :meth:`Node.run_images` passes PNG or
JPEG files, which the program preprocesses from the model's sidecar (``MODEL.anan.json``)
with the web example's examples/web/preprocess.js.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
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

#: the packages of examples/node/package.json that must be installed at their pinned version
PACKAGES = ("onnxruntime-node", "pngjs", "jpeg-js")


def script() -> Path:
    """examples/node/anan_infer.mjs."""
    return example_dir("node") / "anan_infer.mjs"


def install() -> str:
    """Installs examples/node's dependencies when needed; returns the node executable."""
    node, _ = node_and_npm()
    for package in PACKAGES:  # a node_modules/ from before a package was added is reinstalled
        npm_ci(example_dir("node"), package)
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
        return self._json(model, [npy])

    def run_images(self, model: str | Path, images: Sequence[str | Path]) -> np.ndarray:
        """The model's first output for PNG/JPEG files, preprocessed by the program itself
        from the model's sidecar (scale/offset per channel, channel order, layout)."""
        return self._json(model, images)

    def _json(self, model: str | Path, inputs: Sequence[str | Path]) -> np.ndarray:
        proc = infer(self._node, "--json", "-q", model, *inputs)
        if proc.returncode != 0:
            raise RuntimeUnavailable(f"anan_infer.mjs failed on {Path(model).name}:\n{tail(proc)}")
        return json_rows(proc.stdout)

    def close(self) -> None:
        self._folder.cleanup()
