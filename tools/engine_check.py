"""Held-out engine check (issue 29): every option set on models the tests do not use, on
every engine, against the literal per-image loop; prints the table of docs/engines.md.

Models (built here, seeded random weights, never seen by the tests):

- ``mobilenetv3``: ``keras.applications.MobileNetV3Small`` (96×96, ``weights=None``, 10
  classes, raw logits; its own Rescaling, so 0–255 pixels), converted from ``.keras``;
- ``keras-bn``: a Keras CNN with BatchNormalization (Conv-BN-ReLU-MaxPool ×2, Dense),
  32×32, from ``.keras``;
- ``torch-nchw``: an NCHW ONNX graph laid out like a PyTorch export (input ``input``, batch
  axis ``batch_size``, Conv-ReLU-MaxPool-Conv-ReLU-GlobalAveragePool-Flatten-Gemm).

Each model is converted with each option set (defaults, ``--rule additive``, ``--counter
clamp``, ``--reduce max``, ``--reduce majority``, ``--signal post``, ``--batch 1``,
``--batch 4``, ``--no-fold-steps``: the defaults fold the steps); each ANAN model runs on
every engine (onnxruntime, the ONNX reference, OpenVINO pinned to f32, tract, LiteRT) on the
same images. A row is exact when ``verify_models`` passes it with the tolerance 1e-5 × max
|loop| (images whose sign test is a near-tie skipped, as ``verify`` skips them); how many
images the loop moves away from the base (by more than 1e-4 × max |loop|) is printed per
option set, and a failing row says whether the engine provably moved them too::

    PYTHONPATH=$PWD .venv/bin/python tools/engine_check.py [--images 4] [--models a,b]

An engine that is not installed is reported as such (``skip``), not as a failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from anan_onnx import AnanParams, convert_file  # noqa: E402
from anan_onnx.errors import AnanError  # noqa: E402
from anan_onnx.reference.literal import LiteralReference  # noqa: E402
from anan_onnx.reference.verify import VerifyReport, verify_models  # noqa: E402
from anan_onnx.runtime.engines import EngineUnavailable, open_engine  # noqa: E402
from anan_onnx.runtime.session import Session, run_fixed_batch  # noqa: E402

TOLERANCE = 1e-5
MOVED = 1e-4  # an image the loop moves by more than this (of the scale) must move on the engine
ENGINES = (("ort", None), ("reference", None), ("openvino", "f32"), ("tract", None),
           ("litert", None))  # fmt: skip
PRECISION = dict(ENGINES)
OPTION_SETS: dict[str, tuple[AnanParams, dict]] = {
    "defaults": (AnanParams(), {}),
    "--rule additive": (AnanParams(rule="additive"), {}),
    "--counter clamp": (AnanParams(counter="clamp"), {}),
    "--reduce max": (AnanParams(reduce="max"), {}),
    "--reduce majority": (AnanParams(reduce="majority"), {}),
    "--signal post": (AnanParams(signal="post"), {}),
    "--batch 1": (AnanParams(), {"batch": 1}),
    "--batch 4": (AnanParams(), {"batch": 4}),
    "--no-fold-steps": (AnanParams(), {"fold_steps": False}),
}


def mobilenet(folder: Path, images: int) -> tuple[Path, np.ndarray]:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(
        input_shape=(96, 96, 3), weights=None, classes=10, classifier_activation=None
    )
    path = folder / "mobilenetv3.keras"
    model.save(path)
    return path, _pixels(images, (96, 96, 3)) * 255.0


def keras_bn(folder: Path, images: int) -> tuple[Path, np.ndarray]:
    import keras

    keras.utils.set_random_seed(1)
    layers = keras.layers
    model = keras.Sequential([keras.Input(shape=(32, 32, 3), name="image")])
    for i, filters in enumerate((16, 32), start=1):
        model.add(layers.Conv2D(filters, 3, name=f"conv{i}"))
        model.add(layers.BatchNormalization(name=f"bn{i}"))
        model.add(layers.Activation("relu", name=f"relu{i}"))
        model.add(layers.MaxPooling2D(2, name=f"pool{i}"))
    model.add(layers.Flatten())
    model.add(layers.Dense(5, name="logits"))
    rng = np.random.default_rng(1)
    for layer in model.layers:  # BatchNormalization with statistics that change something
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            shape = gamma.shape
            layer.set_weights([
                rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape),
                rng.normal(0, 0.1, shape), rng.uniform(0.5, 2.0, shape),
            ])  # fmt: skip
    path = folder / "keras_bn.keras"
    model.save(path)
    return path, _pixels(images, (32, 32, 3))


def torch_nchw(folder: Path, images: int) -> tuple[Path, np.ndarray]:
    """An NCHW graph as ``torch.onnx.export`` writes one (``input``/``output``, dynamic
    axis ``batch_size``, ``/conv1/Conv``-style names)."""
    rng = np.random.default_rng(2)

    def weight(*shape: int) -> np.ndarray:
        return rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape).astype(np.float32)

    arrays = {
        "conv1.weight": weight(8, 3, 3, 3), "conv1.bias": rng.normal(0, 0.05, 8),
        "conv2.weight": weight(16, 8, 3, 3), "conv2.bias": rng.normal(0, 0.05, 16),
        "fc.weight": weight(4, 16), "fc.bias": rng.normal(0, 0.05, 4),
    }  # fmt: skip
    inits = [numpy_helper.from_array(np.float32(a), n) for n, a in arrays.items()]
    layers = [  # (torch module path, op, extra inputs, attributes)
        ("/conv1/Conv", "Conv", ["conv1.weight", "conv1.bias"],
         {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
        ("/relu1/Relu", "Relu", [], {}),
        ("/pool/MaxPool", "MaxPool", [], {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ("/conv2/Conv", "Conv", ["conv2.weight", "conv2.bias"], {"kernel_shape": [3, 3]}),
        ("/relu2/Relu", "Relu", [], {}),
        ("/gap/GlobalAveragePool", "GlobalAveragePool", [], {}),
        ("/flatten/Flatten", "Flatten", [], {}),
        ("/fc/Gemm", "Gemm", ["fc.weight", "fc.bias"], {"transB": 1}),
    ]  # fmt: skip
    nodes, x = [], "input"
    for i, (name, op, extra, attributes) in enumerate(layers):
        out = "output" if i == len(layers) - 1 else f"{name}_output_0"
        nodes.append(helper.make_node(op, [x, *extra], [out], name=name, **attributes))
        x = out
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version, model.producer_name = 8, "pytorch"
    model = onnx.shape_inference.infer_shapes(model)  # torch writes value_info for every value
    path = folder / "torch_nchw.onnx"
    onnx.save(model, path)
    return path, _pixels(images, (3, 32, 32))


MODELS: dict[str, Callable[[Path, int], tuple[Path, np.ndarray]]] = {
    "mobilenetv3": mobilenet,
    "keras-bn": keras_bn,
    "torch-nchw": torch_nchw,
}
DEFAULT_IMAGES = 4  # images per model (--images)


def _pixels(images: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(7).random((images, *shape), dtype=np.float32)


def check_model(name: str, folder: Path, engines: dict[str, str | None],
                images: int = DEFAULT_IMAGES) -> list[tuple]:  # fmt: skip
    """(model, option set, engine, verdict, detail) rows for one model; ``engines`` maps
    each engine to why it cannot run here (``None``: it can)."""
    source, x = MODELS[name](folder, images)
    rows = []
    for i, (option, (params, fields)) in enumerate(OPTION_SETS.items()):
        pair = folder / f"{name}.{i}.anan.onnx", folder / f"{name}.{i}.base.onnx"
        start = time.perf_counter()
        try:  # every option set from the source model, as a user converts it
            result = convert_file(source, pair[0], params, base_output=pair[1], progress=False,
                                  **fields)  # fmt: skip
        except AnanError as exc:
            rows += [(name, option, e, "refused", str(exc)) for e in engines]
            continue
        loop = LiteralReference(result.base, result.target_layer, params).run(x).outputs[0]
        loop = loop.reshape(len(x), -1)
        scale = float(np.abs(loop).max()) or 1.0  # relative to the largest output
        move = np.abs(loop - _base_outputs(pair[1], x)).max(axis=1)
        print(f"{name} {option}: converted in {time.perf_counter() - start:.1f} s, loop moves "
              f"{int((move > MOVED * scale).sum())}/{len(x)} images (max {move.max() / scale:.3g}"
              f" of the largest output, {scale:.3g})",
              file=sys.stderr, flush=True)  # fmt: skip
        for engine, why_not in engines.items():
            verdict = ("skip", why_not) if why_not else _verdict(engine, pair, x, move=move,
                                                                 scale=scale)  # fmt: skip
            rows.append((name, option, engine, *verdict))
    return rows


def _base_outputs(base: Path, x: np.ndarray) -> np.ndarray:
    """The base model's outputs, one row per image (a fixed-batch base in its own chunks)."""
    session = Session(base)
    return run_fixed_batch(session.predict, x, session.fixed_batch).reshape(len(x), -1)


def _verdict(engine: str, pair: tuple[Path, Path], x: np.ndarray, *, move: np.ndarray,
             scale: float) -> tuple[str, str]:  # fmt: skip
    """``verify_models``' verdict (its near-tie skip included), tolerance relative to
    ``scale``; ``move``: how far the loop moves each image from the base (for the message)."""
    try:
        with warnings.catch_warnings():  # the inputs are given: no preprocessing to contradict
            warnings.simplefilter("ignore", UserWarning)
            report = verify_models(*pair, inputs=x, engine=engine, precision=PRECISION[engine],
                                   tolerance=TOLERANCE * scale)  # fmt: skip
    except Exception as exc:  # an engine that cannot load the model: the row's finding
        lines = str(exc).strip().splitlines()
        return "FAIL", (lines[-1] if lines else type(exc).__name__)[:100]
    ties = f", {report.near_ties} near-tie(s) skipped" if report.near_ties else ""
    diff = report.max_abs_diff / scale
    if report.passed:
        return "exact", f"{diff:.1e}{ties}"
    return "FAIL", f"rel. diff {diff:.1e}, {report.agreeing}/{report.compared} classes agree" + (
        ties + ("" if _follows(report, move, scale) else ", does not move like the loop")
    )


def _follows(report: VerifyReport, move: np.ndarray, scale: float) -> bool:
    """Whether every compared image the loop moves provably moved on the engine too: it
    moved at least ``move - |engine - loop|`` (for the message; a row within the tolerance
    always does, by more than (MOVED - TOLERANCE) x scale)."""
    return all(
        move[r.index] - r.max_abs_diff > (MOVED - TOLERANCE) * scale
        for r in report.per_image
        if r.status != "SKIP" and move[r.index] > MOVED * scale
    )


def _open_engines() -> dict[str, str | None]:
    """Each engine and why it cannot run here (``None``: it can)."""
    engines: dict[str, str | None] = {}
    for name, precision in ENGINES:
        try:
            open_engine(name, precision=precision).close()
            engines[name] = None
        except EngineUnavailable as exc:
            engines[name] = str(exc)
    return engines


def table(rows: list[tuple]) -> str:
    """Rows exact / total per engine, and each failing row."""
    lines = ["| engine | rows exact | what fails |", "|---|---|---|"]
    refused = sorted({f"{r[0]} {r[1]} ({r[4]})" for r in rows if r[3] == "refused"})
    for engine, _ in ENGINES:
        mine = [r for r in rows if r[2] == engine and r[3] != "refused"]
        if mine and all(r[3] == "skip" for r in mine):  # not installed here: one reason
            lines.append(f"| {engine} | not run | {mine[0][4]} |")
            continue
        exact = sum(r[3] == "exact" for r in mine)
        bad = [f"{r[0]} {r[1]}: {r[3]} ({r[4]})" for r in mine if r[3] != "exact"]
        label = engine + (" (f32)" if engine == "openvino" else "")
        lines.append(f"| {label} | {exact}/{len(mine)} | {'; '.join(bad) or '–'} |")
    if refused:  # the converter's own refusals: no model to run, on any engine
        lines.append(f"\nNot converted (the option does not apply): {'; '.join(refused)}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)
    if args.images < 4 or args.images % 4:  # the --batch 4 models take whole batches of 4
        print(f"--images must be a multiple of 4, got {args.images}: pass --images 4",
              file=sys.stderr)  # fmt: skip
        return 2
    names = args.models.split(",")
    unknown = set(names) - set(MODELS)
    if unknown:
        print(f"unknown model {sorted(unknown)[0]}: pick from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    engines = _open_engines()
    rows = []
    with tempfile.TemporaryDirectory(prefix="anan_engine_check_") as work:
        for name in names:
            folder = Path(work) / name
            folder.mkdir()
            rows += check_model(name, folder, engines, args.images)
    print(table(rows))
    return 0 if all(r[3] in ("exact", "skip", "refused") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
