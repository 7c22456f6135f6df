"""The ``anan-onnx`` command line (kept apart from the core, as OnnxSlim does).

``main`` parses the arguments and dispatches: ``app.py`` holds convert, inspect, predict
and verify; ``evaluation.py`` the tune and evaluate subcommands.
"""

from anan_onnx.cli.app import main

__all__ = ["main"]
