"""The ``inspect`` and ``predict`` commands: inference only.

In a module of their own so that an import-linter contract (pyproject.toml) can state what
the README promises: these commands never import TensorFlow, Keras or tf2onnx, not even
lazily (the ``convert`` command in :mod:`anan_onnx.cli.app` does, inside its function).
The parsers stay in ``app``; the commands' bodies are here.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from anan_onnx import json_clean
from anan_onnx.metadata import is_anan, read_metadata
from anan_onnx.params import AnanParams
from anan_onnx.runtime.labels import predicted_labels
from anan_onnx.runtime.npy import load_npy
from anan_onnx.runtime.session import Session

if TYPE_CHECKING:
    import onnx

__all__ = ["cmd_inspect", "cmd_predict", "target_text"]


def cmd_inspect(args: argparse.Namespace) -> int:
    """``anan-onnx inspect``: metadata, inputs/outputs, opset and op counts of a model."""
    from anan_onnx.model_io import load_onnx  # onnx: not for predict's start-up

    model = load_onnx(args.model)
    meta = read_metadata(model)
    ops = Counter(n.op_type for n in model.graph.node)
    inits = {i.name for i in model.graph.initializer}
    info = {
        "file": str(args.model),
        "bytes": args.model.stat().st_size,
        "kind": "anan" if is_anan(meta) else "base",
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": {i.name: _dims(i) for i in model.graph.input if i.name not in inits},
        "outputs": {o.name: _dims(o) for o in model.graph.output},
        "metadata": meta,
        "nodes": len(model.graph.node),
        "op_counts": dict(ops.most_common()),
    }
    if args.json:
        print(json_clean.dumps(info))
        return 0
    print(
        f"{info['file']}: {info['kind']} model, {info['bytes'] / 1e6:.2f} MB, "
        f"IR {info['ir_version']}, opset {info['opset'].get('ai.onnx')}"
    )
    for name, dims in info["inputs"].items():
        print(f"  input  {name}: {dims}")
    for name, dims in info["outputs"].items():
        print(f"  output {name}: {dims}")
    if info["kind"] == "anan":
        print(f"  target layer: {target_text(meta)}")
        print(f"  parameters  : {AnanParams.from_strings(meta).describe()}")
    for key in sorted(meta):
        value = meta[key]
        if key in ("keras_convs", "keras_before"):  # JSON maps, long: summarised
            value = f"(JSON, {len(value)} characters; see --json)"
        print(f"  anan.{key} = {value}")
    print(f"  {info['nodes']} nodes: " + ", ".join(f"{op} {n}" for op, n in ops.most_common()))
    return 0


def target_text(meta: dict[str, str]) -> str:
    """``node (Keras layer 'x'): reason`` from an ANAN model's metadata."""
    text = str(meta.get("target_layer"))
    if meta.get("target_keras_layer"):
        text += f" (Keras layer {meta['target_keras_layer']!r})"
    if meta.get("target_reason"):
        text += f": {meta['target_reason']}"
    return text


def cmd_predict(args: argparse.Namespace) -> int:
    """``anan-onnx predict``: probabilities and labels of images and .npy batches."""
    session = Session(args.model, provider=args.provider, threads=args.threads)
    names, probs = [], []
    images = [p for p in args.inputs if p.suffix.lower() != ".npy"]
    for path in args.inputs:
        if path.suffix.lower() == ".npy":
            out = session.predict(load_npy(path))
            names += [f"{path}[{i}]" for i in range(len(out))]
            probs.append(out)
    if images:
        probs.append(session.predict_images(images))
        names += [str(p) for p in images]
    result = np.concatenate(probs).reshape(len(names), -1)
    labels = predicted_labels(result)
    if args.json:
        rows = [
            {"input": n, "probabilities": [float(v) for v in r], "label": int(c)}
            for n, r, c in zip(names, result, labels, strict=True)
        ]
        print(json_clean.dumps({"model": str(args.model), "predictions": rows}))
        return 0
    for n, r, c in zip(names, result, labels, strict=True):
        print(f"{n}\t{' '.join(f'{v:.6f}' for v in r)}\tlabel={c}")
    return 0


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value.type.tensor_type.shape.dim
    ]
