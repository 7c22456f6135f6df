"""Where ANAN's latency overhead goes: the graph with parts of the rewrite taken out.

Converts the benchmark's 128×128 CNN (``benchmarks.bench.models``, ONNX built without
TensorFlow, same seed) with the default parameters, then takes parts of the converted graph
out again, and times all of them against the base CNN in interleaved rounds (2 intra-op
threads, spinning off, or with ``--spinning`` onnxruntime's default of idle threads
spinning in one global pool, the two ways ``python -m benchmarks.bench`` measures), each set of
sessions in a fresh process as the benchmark does (``--processes``):

- ``anan``: the real ANAN model; ``anan, --fold-steps``: the same with the steps folded
  into one product per gain (a real option, same outputs);
- ``no steps``: the k monitoring steps (window-sum means, sign test, counters, triggers)
  replaced by a constant gain: what the steps cost;
- ``no steps, no scaling``: also the final scaling replaced by the bias and activation
  alone: what remains is the cost of the first layer's Conv no longer carrying the
  activation (and the pool moved after the scaling).

The stand-ins are made by editing the converted model (:func:`without_steps`,
:func:`without_scaling`), not by patching the rewrite: they use only the node names of the
blocked final scaling (``anan/output_scaled/...``, the default route for this CNN) and fail
with a clear error if the graph has no such nodes. They give wrong outputs on purpose; they
only time the graph's structure. This is a diagnostic for docs/performance.md, not a test.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.bench.ablate --batch 1 --rounds 800
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
from onnx import numpy_helper

from benchmarks.bench.config import MODELS, ModelSpec
from benchmarks.bench.models import build_onnx
from benchmarks.bench.sessions import SessionSet, in_fresh_process, rotated, time_session_set

#: the final scaling's nodes (``blocked_scaling`` under the name the pool route gives it)
SCALING = "anan/output_scaled"
#: the constant gain of :func:`without_steps`, what the default conversion's steps give
STAND_IN_GAIN = 1.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench.ablate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=800, help="in all, over the processes")
    parser.add_argument("--processes", type=int, default=4, help="sets of sessions, each fresh")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument(
        "--spinning",
        action="store_true",
        help="idle threads spin (onnxruntime's default), one global pool (default: no spinning)",
    )
    args = parser.parse_args(argv)
    threading = "spinning" if args.spinning else "no spinning"

    spec = MODELS["128"]
    with tempfile.TemporaryDirectory() as tmp:
        models = ablated_models(spec, args.k, Path(tmp))
        paths = {name: str(Path(tmp) / f"model{i}.onnx") for i, name in enumerate(models)}
        for name, model in models.items():
            onnx.save(model, paths[name])
        per_process = [_time_in_process(paths, i, spec, args) for i in range(args.processes)]
    times = {name: np.concatenate([t[name] for t in per_process]) for name in models}
    base_times = times["base"]
    print(
        f"128×128 CNN, batch {args.batch}, k={args.k}, threads {threading}, "
        f"{len(base_times)} rounds in {args.processes} processes"
    )
    print("| graph | nodes | ms (median) | / base (median of per-round ratios) | per process |")
    print("|---|---|---|---|---|")
    for name, model in models.items():
        t = times[name]
        ratio = statistics.median(t / base_times)
        each = " ".join(
            f"{statistics.median(np.asarray(p[name]) / np.asarray(p['base'])):.3f}"
            for p in per_process
        )
        nodes = len(model.graph.node)
        print(f"| {name} | {nodes} | {np.median(t) * 1e3:.3f} | {ratio:.3f} | {each} |")
    return 0


def ablated_models(spec: ModelSpec, k: int, tmp: Path) -> dict[str, onnx.ModelProto]:
    """The base CNN, its ANAN model (plain and with folded steps) and the two stand-ins."""
    import anan_onnx

    path = tmp / "base.onnx"
    onnx.save(build_onnx(spec, 0), path)
    base = anan_onnx.load_base(path)
    params = anan_onnx.AnanParams(k=k)
    anan = anan_onnx.convert_model(base, params).anan
    return {
        "base": base,
        "anan": anan,
        "anan, --fold-steps": anan_onnx.convert_model(base, params, fold_steps=True).anan,
        "no steps": without_steps(anan),
        "no steps, no scaling": without_scaling(without_steps(anan)),
    }


def without_steps(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose final scaling reads a constant (1, 1, O, 1) gain column instead of the
    steps' gains; the steps and the activities they read, now unused, are removed."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    gain_node = _node(graph, f"{SCALING}/gain_blocked")  # Conv(gain column, select)
    select = numpy_helper.to_array(_initializer(graph, gain_node.input[1]))
    gain = np.full((1, 1, select.shape[0], 1), STAND_IN_GAIN, select.dtype)
    graph.initializer.append(numpy_helper.from_array(gain, "anan/stand_in_gain"))
    gain_node.input[0] = "anan/stand_in_gain"
    return _pruned(out)


def without_scaling(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose final scaling ``g·P + β`` is the bias alone, ``P + β`` (the depthwise
    Conv that adds β now reads the pooled map P); the gain's nodes, now unused, are removed."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    pooled = _node(graph, f"{SCALING}/scaled").input[0]  # Mul(P, gain map)
    _node(graph, f"{SCALING}/shifted").input[0] = pooled  # Conv(g·P, ones, β), depthwise
    return _pruned(out)


def _node(graph: onnx.GraphProto, name: str) -> onnx.NodeProto:
    for node in graph.node:
        if node.name == name:
            return node
    raise SystemExit(
        f"ablate: error: the ANAN graph has no node {name!r} (no blocked final scaling?): "
        "the stand-ins need the default conversion of the benchmark's 128×128 CNN"
    )


def _initializer(graph: onnx.GraphProto, name: str) -> onnx.TensorProto:
    return next(i for i in graph.initializer if i.name == name)


def _pruned(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the nodes and constants that no output depends on any more."""
    graph = model.graph
    constants = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in constants]
    outputs = [o.name for o in graph.output]
    return onnx.utils.Extractor(model).extract_model(inputs, outputs)


def _time_in_process(
    paths: dict[str, str], index: int, spec: ModelSpec, args: argparse.Namespace
) -> dict[str, list[float]]:
    """One set of sessions in a fresh process (``sessions.time_session_set``), created in
    an order rotated by ``index``."""
    rounds = -(-args.rounds // args.processes)
    job = SessionSet(
        paths=paths,
        creation_order=rotated(list(paths), index),
        spec=spec,
        batch=args.batch,
        seed=1,
        threading="spinning" if args.spinning else "no spinning",
        warmup=3,
        min_rounds=rounds,
        max_rounds=rounds,
        budget_s=0,
    )
    return in_fresh_process(time_session_set, job)


if __name__ == "__main__":
    raise SystemExit(main())
