"""Keras → ONNX export through tf2onnx. The only module that imports TensorFlow (lazily).

tf2onnx's ``from_keras`` fails on reloaded Sequential models in Keras 3, so the model is
wrapped in a ``tf.function`` and exported with ``tf2onnx.convert.from_function``. The
batch dimension stays dynamic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import onnx

from ._errors import AnanError

__all__ = ["check_opset", "keras_to_onnx"]

MAX_OPSET = 18
MIN_OPSET = 13


def keras_to_onnx(path: str | Path, *, opset: int = 17) -> onnx.ModelProto:
    """Exports a Keras model file (``.keras`` or ``.h5``) to an ONNX model in memory.

    Args:
        path: Keras 3 ``.keras`` archive or legacy HDF5 file (Sequential or Functional).
        opset: ONNX opset, 13–18.

    Returns:
        The ONNX model with a dynamic batch dimension, input named ``input``.

    Raises:
        AnanError: TensorFlow missing, unreadable file, several inputs, export failure.
    """
    check_opset(opset)
    with _quiet_native_logs():
        return _export(Path(path), opset)


def _export(path: Path, opset: int) -> onnx.ModelProto:
    tf, keras, tf2onnx = _import_tensorflow()
    model = _load(keras, path)
    if len(model.inputs) != 1:
        raise AnanError(f"{path} has {len(model.inputs)} inputs: ANAN supports one image input")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise AnanError(
            f"{path} takes input of shape {shape}: ANAN needs a fixed-size image input "
            "(batch, height, width, channels); rebuild the model with a fixed Input shape"
        )
    spec = [tf.TensorSpec((None, *shape[1:]), tf.float32, name="input")]

    @tf.function(input_signature=spec)
    def forward(x):
        return model(x, training=False)

    try:
        proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset)
    except Exception as exc:
        raise AnanError(f"tf2onnx could not export {path} ({_first_line(exc)})") from None
    return proto


def check_opset(opset: int) -> None:
    """Raises unless ``MIN_OPSET <= opset <= MAX_OPSET``."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise AnanError(
            f"opset {opset} is not supported: pass --opset between {MIN_OPSET} and {MAX_OPSET}"
        )


def _load(keras, path: Path):
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise AnanError(
            f"{path} is not a loadable Keras model ({_first_line(exc)}): check the file"
        ) from None


def _import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        raise AnanError(
            f"converting a Keras model needs TensorFlow ({exc.name} is missing): "
            "pip install 'anan-onnx[keras]', or pass an .onnx model"
        ) from None
    for name in ("tf2onnx", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return tf, keras, tf2onnx


@contextlib.contextmanager
def _quiet_native_logs() -> Iterator[None]:
    """Silences TensorFlow's C++ start-up chatter (it ignores TF_CPP_MIN_LOG_LEVEL now).

    Python exceptions still propagate; only what native code writes to fd 2 is dropped.
    """
    if os.environ.get("ANAN_ONNX_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
