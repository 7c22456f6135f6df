"""The base CNNs as the sections use them: built, saved, loaded, batched, and their inputs."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from benchmarks.bench.config import OPTIONS, THREADS, ModelSpec, Plan


def import_tf() -> tuple[Any, Any]:
    """Imports TensorFlow and Keras quietly, with 2 intra-op threads and 1 inter-op thread."""
    from anan_onnx.convert.keras_export import quiet_native_logs

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_native_logs():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL
        import keras
        import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised: the settings of the first call stand
        pass
    return tf, keras


def fixed_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of a dynamic-batch model with the batch axis of its input and outputs fixed."""
    fixed = copy.deepcopy(model)
    initializers = {i.name for i in fixed.graph.initializer}
    values = [v for v in fixed.graph.input if v.name not in initializers] + list(fixed.graph.output)
    for value in values:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_value = batch
    return fixed


def build_onnx(spec: ModelSpec, seed: int) -> onnx.ModelProto:
    """The base CNN ``spec`` in ONNX, seeded (``anan_onnx.testing``, imported only now: with
    ``--git-ref`` the measured commit's package must be the first anan_onnx imported)."""
    from anan_onnx.testing import build_base_cnn

    shape = (spec.size, spec.kernel, spec.filters, spec.dense)
    return build_base_cnn(*shape, seed=seed, name=f"base_cnn_{spec.name}")


def build_keras(spec: ModelSpec, seed: int) -> Any:
    """The base CNN ``spec`` in Keras (TF set up by :func:`import_tf` first), seeded."""
    import_tf()
    from anan_onnx.testing import build_base_cnn_keras

    shape = (spec.size, spec.kernel, spec.filters, spec.dense)
    return build_base_cnn_keras(*shape, seed=seed, name=f"base_cnn_{spec.name}")


@dataclasses.dataclass
class Prepared:
    """One base CNN, saved and exported: what every section works on."""

    spec: ModelSpec
    source: Path  # .keras (TF) or .onnx (--no-tf)
    base: onnx.ModelProto  # dynamic batch, as anan_onnx.load_base makes it
    keras_model: Any = None


def prepare_model(spec: ModelSpec, plan: Plan, tmp: Path) -> Prepared:
    """Builds the CNN (Keras, or ONNX with ``--no-tf``), saves it and loads the base ONNX."""
    import anan_onnx

    if plan.use_tf:
        model = build_keras(spec, plan.seed)
        source = tmp / f"base_{spec.name}.keras"
        model.save(source)
    else:
        model = None
        source = tmp / f"base_{spec.name}.onnx"
        onnx.save(build_onnx(spec, plan.seed), source)
    return Prepared(spec, source, anan_onnx.load_base(source), model)


def images(spec: ModelSpec, n: int, seed: int) -> np.ndarray:
    """A seeded batch of NHWC float32 images in [0, 1)."""
    rng = np.random.default_rng(seed)
    return rng.random((n, spec.size, spec.size, 3), dtype=np.float32)


def params_for(k: int, option: str) -> Any:
    """``AnanParams`` with the paper's Cats&Dogs values (μ=2, a=1.05, b=0.30) and k."""
    from anan_onnx import AnanParams

    return AnanParams(k=k, **OPTIONS[option])  # type: ignore[arg-type]
