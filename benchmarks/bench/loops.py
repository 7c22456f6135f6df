"""Section 3: the paper's per-image procedure (TF eager, tf.function) and the literal loop
in onnxruntime, image by image beside the ANAN graph."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.bench.config import LOOP_PAUSE_S, Plan
from benchmarks.bench.models import Prepared, images, import_tf, params_for
from benchmarks.bench.sessions import make_session
from benchmarks.bench.stats import CpuMeter, fmt_ms, summary


def paper_procedure(
    conv: Any, watch: Callable, predict: Callable, params: Any, x: np.ndarray
) -> np.ndarray:
    """The paper's procedure for one image (1×H×W×C) in Keras, rule as in the spec.

    Back up the conv's weights; k times: set the weights, run the network, take the kernel
    means of the conv output, count, scale the kernels; then predict and restore.
    """
    w0, bias = conv.get_weights()  # 1. back up (kernel is kh × kw × C × O)
    w = w0.copy()
    r = np.zeros(w.shape[-1])
    for _ in range(params.k):  # 2. present the image k times
        conv.set_weights([w, bias])
        y, _ = watch(x)
        s = np.asarray(y)[0].mean(axis=(0, 1), dtype=np.float64)
        u = np.where(s > 0, 1, -1)  # eq. 1
        r = np.where(np.abs(r) == params.mu, r, r + u)  # eq. 2, absorbing
        m = np.where(r == params.mu, params.a, np.where(r == -params.mu, 1 - params.b, 1.0))
        w = w * m.astype(np.float32)  # eq. 3, multiplicative
    conv.set_weights([w, bias])
    out = np.asarray(predict(x))  # 3. predict with the modulated weights
    conv.set_weights([w0, bias])  # 4. restore
    return out


def tf_callables(model: Any, shape: tuple[int, ...], compiled: bool) -> tuple[Callable, Callable]:
    """(watch, predict): the network returning (first conv output, prediction), and predict."""
    tf, keras = import_tf()
    conv_out = model.get_layer("conv1").output
    watch_model = keras.Model(model.inputs[0], [conv_out, model.outputs[0]])

    def watch(x):
        return watch_model(x, training=False)

    def predict(x):
        return model(x, training=False)

    if not compiled:
        return watch, predict
    spec = [tf.TensorSpec((1, *shape[1:]), tf.float32)]
    return tf.function(watch, input_signature=spec), tf.function(predict, input_signature=spec)


def run_loops(preps: list[Prepared], plan: Plan, log: Callable[[str], None]) -> list[dict]:
    """Section 3: TF eager / tf.function loops and the ORT literal loop, per model and k,
    interleaved image by image with ANAN runs (batch 1, and the largest batch)."""
    rows = []
    big = max(plan.batches)
    for prep in preps:
        x = images(prep.spec, plan.loop_images + 1, plan.seed + 7)
        xb = images(prep.spec, big, plan.seed + big) if big > 1 else None
        for k in plan.ks:
            row = loop_row(prep, plan, k, x, xb)
            rows.append(row)
            timed = [(key[:-2], v) for key, v in row.items() if isinstance(v, dict)]
            log(
                f"loops {prep.spec.name} k={k}: "
                + ", ".join(f"{name} {fmt_ms(v['median'])} ms/img" for name, v in timed)
            )
            gc.collect()
    return rows


def loop_procedures(
    prep: Prepared, plan: Plan, params: Any, conversion: Any, x: np.ndarray
) -> dict[str, Callable[[np.ndarray], Any]]:
    """The per-image procedures: ORT literal loop and, with TF, the eager and compiled loops."""
    from anan_onnx import LiteralReference

    ref = LiteralReference(conversion.base, conversion.target_layer, params)
    procs: dict[str, Callable[[np.ndarray], Any]] = {
        "ort_literal": lambda im: ref.run(im).outputs[0]
    }
    if plan.use_tf:
        conv = prep.keras_model.get_layer("conv1")
        for label, compiled in (("tf_eager", False), ("tf_function", True)):
            watch, predict = tf_callables(prep.keras_model, x.shape, compiled)
            procs[label] = lambda im, w=watch, p=predict: paper_procedure(conv, w, p, params, im)
    return procs


def loop_row(
    prep: Prepared, plan: Plan, k: int, x: np.ndarray, xb: np.ndarray | None
) -> dict[str, Any]:
    """Per-image seconds of each procedure and of ANAN (default options, dynamic batch).

    ``x[0]`` is the warm-up image. Then, image by image, every procedure runs once (rotating
    order) next to one ANAN run at batch 1 and one at ``len(xb)`` (its time / batch size),
    so that throughput ratios compare runs taken seconds apart.
    """
    from anan_onnx import convert_model

    params = params_for(k, "default")
    conversion = convert_model(prep.base, params)
    session = make_session(conversion.anan)
    procs = loop_procedures(prep, plan, params, conversion, x)
    runners: dict[str, Callable[[int], Any]] = {
        name: (lambda i, f=f: f(x[i : i + 1])) for name, f in procs.items()
    }
    runners["anan_b1"] = lambda i: session.run(x[i : i + 1])[0]
    if xb is not None:
        runners["anan_big"] = lambda i: session.run(xb)[0]
        # the base CNN alone at the large batch: no ANAN model can beat its throughput
        base_session = make_session(prep.base)
        runners["base_big"] = lambda i: base_session.run(xb)[0]
    for run in runners.values():
        run(0)
    meter = CpuMeter()
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    names = list(runners)
    for i in range(1, len(x)):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            time.sleep(LOOP_PAUSE_S)  # let the previous procedure's threads stop spinning
            start = time.perf_counter()
            out = runners[name](i)
            times[name].append(time.perf_counter() - start)
            outputs[name].append(np.asarray(out).reshape(-1)[:1])
    row: dict[str, Any] = {"model": prep.spec.name, "k": k, "images": len(x) - 1}
    row["others_cpu_percent"] = meter.others_percent()
    reference = np.concatenate(outputs["anan_b1"])
    for name in names:
        scale = len(xb) if name in ("anan_big", "base_big") and xb is not None else 1
        row[f"{name}_s"] = summary(np.asarray(times[name]) / scale)
        if name in procs:
            row[f"{name}_maxdiff"] = float(np.abs(np.concatenate(outputs[name]) - reference).max())
    if xb is not None:
        row["anan_batch"] = len(xb)
    return row
