"""Scale-out: ``predict -o DIR`` as a partitioned data job, and Ray, imported only when asked for.

* :mod:`anan_onnx.distributed.predict`: ``anan-onnx predict -o DIR`` on either engine (this
  process, or Ray Data with an actor pool), failures counted, resumable;
* :mod:`anan_onnx.distributed.listing`: the inputs cut into parts (streamed; URIs listed by
  Ray tasks); :mod:`anan_onnx.distributed.parts`: predicting and committing one part;
  :mod:`anan_onnx.distributed.objects`: object stores through pyarrow;
* :mod:`anan_onnx.distributed.ray_engine`: connecting to (or starting) a Ray cluster, and
  :class:`~anan_onnx.distributed.ray_engine.RayEngine`, which runs the per-image work of
  ``tune`` and ``evaluate`` as Ray tasks (see :mod:`anan_onnx.evaluation.engine`);
* :mod:`anan_onnx.distributed.cli`: the command-line options these add.

Importing this package imports neither Ray, pyarrow nor onnxruntime; without ``--engine
ray`` nothing imports Ray (tests/test_no_ray.py checks it).
"""

from __future__ import annotations

from anan_onnx.install_hint import install_hint

__all__ = ["ENGINES", "INSTALL_HINT"]

#: Values of ``--engine``.
ENGINES: tuple[str, ...] = ("local", "ray")
#: What to do when Ray is missing.
INSTALL_HINT = f"--engine ray needs Ray: {install_hint('ray')} (or leave --engine out)"
