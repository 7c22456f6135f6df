"""Generates a tiny CNN and a labelled image folder of any size, for memory and scale checks.

The model is Conv(3→8, 3x3) → Relu → MaxPool 2 → Conv(8→8) → Relu → GAP → dense → softmax
(2 classes) on 32x32 RGB images, with the preprocessing recorded in its metadata; the data
folder has ``train/``, ``val/`` and ``test/`` with two class folders each, so ``tune`` tunes
on exactly ``--val`` images. Everything is seeded: the same arguments give the same files.

Example::

    python research/scale_data.py out/scale --val 3000 --test 200
    anan-onnx tune out/scale/model.onnx out/scale/data -o out/scale/tune --no-progress
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from anan_onnx.metadata import write_metadata
from anan_onnx.runtime.inputs import InputSpec

SIZE = 32
CLASSES = ("class0", "class1")


def make_model(seed: int = 0) -> onnx.ModelProto:
    """The tiny NCHW CNN with its preprocessing in metadata."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32) * 0.5, "W1"),
        numpy_helper.from_array((rng.normal(size=8) * 0.1).astype(np.float32), "B1"),
        numpy_helper.from_array(rng.normal(size=(8, 8, 3, 3)).astype(np.float32) * 0.2, "W2"),
        numpy_helper.from_array(np.zeros(8, np.float32), "B2"),
        numpy_helper.from_array(rng.normal(size=(8, 2)).astype(np.float32), "D"),
        numpy_helper.from_array(np.zeros(2, np.float32), "C"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Conv", ["p1", "W2", "B2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
        helper.make_node("MatMul", ["flat", "D"], ["mm"], name="dense"),
        helper.make_node("Add", ["mm", "C"], ["logit"], name="bias"),
        helper.make_node("Softmax", ["logit"], ["prob"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "scale_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = InputSpec("NCHW", SIZE, SIZE, 3)
    write_metadata(model, {**spec.to_metadata(), "classes": '["class0", "class1"]'})
    return model


def write_split(folder: Path, n: int, seed: int) -> None:
    """``n`` PNGs split evenly over the class folders; class 1 is brighter on average."""
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        label = i % 2
        colour = rng.integers(60 + 60 * label, 140 + 60 * label, size=(1, 1, 3))
        noise = rng.integers(-50, 51, size=(SIZE, SIZE, 3))
        px = np.clip(colour + noise, 0, 255).astype(np.uint8)
        Image.fromarray(px).save(folder / CLASSES[label] / f"img{i:06d}.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="folder for model.onnx and data/")
    p.add_argument("--val", type=int, default=300, help="validation images (default 300)")
    p.add_argument("--test", type=int, default=100, help="test images (default 100)")
    p.add_argument("--train", type=int, default=20, help="train images (default 20)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx.save(make_model(args.seed), args.out / "model.onnx")
    for i, (split, n) in enumerate((("train", args.train), ("val", args.val), ("test", args.test))):
        write_split(args.out / "data" / split, n, args.seed * 10 + i)
    print(f"wrote {args.out / 'model.onnx'} and {args.out / 'data'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
