"""Scale-out on an existing distributed engine: Ray, imported only when asked for.

* :mod:`anan_onnx.distributed.ray_engine`: connecting to (or starting) a Ray cluster, and
  :class:`~anan_onnx.distributed.ray_engine.RayEngine`, which runs the per-image work of
  ``tune`` and ``evaluate`` as Ray tasks (see :mod:`anan_onnx.evaluation.engine`);
* :mod:`anan_onnx.distributed.predict`: ``anan-onnx predict --engine ray``, Ray Data over
  the image paths with an actor pool of onnxruntime sessions;
* :mod:`anan_onnx.distributed.cli`: the command-line options these add.

Importing this package imports neither Ray nor onnxruntime; without ``--engine ray``
nothing imports Ray (tests/test_no_tensorflow.py checks it).
"""

from __future__ import annotations

from anan_onnx.install_hint import install_hint

__all__ = ["ENGINES", "INSTALL_HINT"]

#: Values of ``--engine``.
ENGINES: tuple[str, ...] = ("local", "ray")
#: What to do when Ray is missing.
INSTALL_HINT = f"--engine ray needs Ray: {install_hint('ray')} (or leave --engine out)"
