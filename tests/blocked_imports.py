"""Run Python code in a subprocess where some top-level packages cannot be imported.

Shared by the tests that prove an optional dependency stays optional (TensorFlow for
inference and export, Ray for the local engine): the block is an import hook installed
before the code runs, so the package is missing even when the venv has it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterable

#: The conversion-time packages that inference and export must not need.
TENSORFLOW = ("tensorflow", "keras", "tf2onnx", "tensorboard")

_BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def run_without(
    blocked: Iterable[str], code: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` (dedented) in ``sys.executable -c`` with ``blocked`` unimportable."""
    block = _BLOCK.format(blocked=tuple(blocked))
    return subprocess.run(
        [sys.executable, "-c", block + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
