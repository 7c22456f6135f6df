"""LiteRT's side of the ``litert`` engine: run as a script by the Python 3.12 environment of
tools/litert_venv.sh (onnx2tf, ai-edge-litert), never imported by anan_onnx there.

Usage::

    python _litert_child.py convert MODEL.onnx OUT.tflite
    python _litert_child.py run MODEL.tflite BATCH.npy OUT.npy
    python _litert_child.py time BASE.tflite ANAN.tflite BATCH.npy ROUNDS   (benchmarks/)

``convert`` runs onnx2tf with its defaults (the flatbuffer_direct backend, no TensorFlow) and
keeps the float32 ``.tflite``; ``run`` feeds a float32 batch (NCHW batches are transposed to
the NHWC input onnx2tf makes) to LiteRT's interpreter with its default XNNPACK delegate, and
saves the first output.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


def convert(source: str, target: str) -> None:
    """``source`` (ONNX) to the float32 ``.tflite`` ``target``."""
    import onnx2tf

    with tempfile.TemporaryDirectory(prefix="anan_onnx2tf_") as work:
        onnx2tf.convert(input_onnx_file_path=source, output_folder_path=work, non_verbose=True)
        produced = sorted(Path(work).glob("*_float32.tflite"))
        if not produced:
            sys.exit(f"onnx2tf wrote no float32 .tflite for {source}")
        shutil.move(str(produced[0]), target)


def run(model: str, batch: str, output: str) -> None:
    """The first output of the ``.tflite`` ``model`` for the ``.npy`` ``batch``: at once
    where the model's batch is the batch's, else one image at a time (onnx2tf gives a
    dynamic batch axis size 1, and XNNPACK cannot always resize it)."""
    from ai_edge_litert.interpreter import Interpreter

    x = np.load(batch)
    interpreter = Interpreter(model_path=model)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = _fit(x, detail)
    size = int(detail["shape"][0])
    if size != len(x) and size != 1:
        sys.exit(f"the .tflite takes batches of {size}, got {len(x)} images")
    outputs = []
    for start in range(0, len(x), size):
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(x[start : start + size]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.save(output, np.concatenate(outputs))


def _fit(x: np.ndarray, detail: dict) -> np.ndarray:
    """``x`` in the layout of the interpreter's input ``detail``: onnx2tf reads every 4-D
    ONNX input as NCHW and makes it NHWC (an NHWC model's input is transposed too)."""
    wanted = tuple(int(d) for d in detail["shape"][1:])
    if x.ndim == 4 and x.shape[1:] != wanted and (x.shape[2], x.shape[3], x.shape[1]) == wanted:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def time_pair(base: str, anan: str, batch: str, rounds: str) -> None:
    """Prints ``{"base": [...], "anan": [...]}``: the CPU seconds of each run, the two models
    alternating round by round, each on one thread (benchmarks/engines.py; both models
    with the batch's size fixed, NHWC)."""
    import json
    import time

    from ai_edge_litert.interpreter import Interpreter

    x = np.load(batch)
    runs = {}
    for name, model in (("base", base), ("anan", anan)):
        interpreter = Interpreter(model_path=model, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        fitted = _fit(x, detail)
        if fitted.shape != tuple(int(d) for d in detail["shape"]):
            sys.exit(f"{model} takes {tuple(detail['shape'])}, the batch is {x.shape}")
        runs[name] = (interpreter, detail["index"], fitted)
    times: dict[str, list[float]] = {"base": [], "anan": []}
    for _ in range(int(rounds)):
        for name, (interpreter, index, fitted) in runs.items():
            interpreter.set_tensor(index, fitted)
            start = time.process_time()
            interpreter.invoke()
            times[name].append(time.process_time() - start)
    print(json.dumps(times))


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "convert":
        convert(*arguments)
    elif command == "time":
        time_pair(*arguments)
    else:
        run(*arguments)
