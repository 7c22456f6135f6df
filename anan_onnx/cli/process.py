"""Process-wide settings of the ``anan-onnx`` command: made here, never by the library.

Environment variables, logger levels and onnxruntime's default log severity belong to the
whole process; a program that imports ``anan_onnx`` keeps its own. The command owns its
process, so it sets them once, before any command runs.
"""

from __future__ import annotations

import logging
import os

__all__ = ["configure_process"]

#: loggers of the Keras export whose INFO/WARNING lines no user of the command can act on
_QUIET_LOGGERS = ("tf2onnx", "tensorflow", "absl")


def configure_process() -> None:
    """Quiet TensorFlow and onnxruntime, and keep TensorFlow's memory low.

    The environment variables are read when TensorFlow is imported (only to export a Keras
    model), so they are set before; a value the user set is kept.
    """
    # TensorFlow runs here only to export a Keras model, never to compute with it; without
    # oneDNN its allocator frees the loaded weights instead of pooling them (VGG16: peak
    # 8.7 -> 7.5 GB; the exported model is the same).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    _quiet_onnxruntime()


def _quiet_onnxruntime() -> None:
    """No coloured onnxruntime log lines before the command's one-line error. Imported here
    rather than at the top: ``anan-onnx --help`` and argument errors need no onnxruntime."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
