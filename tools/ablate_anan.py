"""Where ANAN's latency overhead goes: the graph with parts of the rewrite taken out.

Converts the benchmark's 128×128 CNN (``tools/bench_anan.py``, ONNX built without
TensorFlow, same seed) with the default parameters, then again with parts of the rewrite
replaced by stand-ins, and times all of them against the base CNN in interleaved rounds
(2 intra-op threads, spinning off, or with ``--spinning`` onnxruntime's default of idle
threads spinning in one global pool, the two ways ``bench_anan.py`` measures), each set of
sessions in a fresh process as ``bench_anan.py`` does (``--processes``):

- ``anan``: the real ANAN model; ``anan, --fold-steps``: the same with the steps folded
  into one product per gain (a real option, same outputs);
- ``no steps``: the k monitoring steps (window-sum means, sign test, counters, triggers)
  replaced by a constant gain: what the steps cost;
- ``no steps, no scaling``: also the final scaling replaced by the bias and activation
  alone: what remains is the cost of the first layer's Conv no longer carrying the
  activation (and the pool moved after the scaling).

The stand-ins give wrong outputs on purpose; they only time the graph's structure. This
is a diagnostic for BENCHMARKS.md, not a test.

Usage::

    .venv/bin/python tools/ablate_anan.py --batch 1 --rounds 800
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_anan  # noqa: E402  (the benchmark's model builder and session setup)

import anan_onnx  # noqa: E402
import anan_onnx.rewrite.graph as _rewrite  # noqa: E402


def _constant_steps(b, params, activity_of, gains, steps):
    """A constant gain, as the (1, 1, O, 1) column the default conversion's steps give."""
    channels = gains[0].const_value.shape[1]
    return [b.const("anan/stand_in_gain", np.full((1, 1, channels, 1), 1.05))]


def _bias_only(b, gain, pooled, bias, name, *, column=False):
    ones = b.const(f"{name}/identity", np.ones((pooled.shape[1], 1, 1, 1)))
    inputs = [pooled, ones, b.const(f"{name}/bias", bias)]
    return b.op("Conv", inputs, f"{name}/shifted", group=pooled.shape[1], kernel_shape=[1, 1])


def _convert(base: onnx.ModelProto, params, **stand_ins) -> onnx.ModelProto:
    saved = {name: getattr(_rewrite, name) for name in stand_ins}
    try:
        for name, fn in stand_ins.items():
            setattr(_rewrite, name, fn)
        return anan_onnx.convert_model(base, params).anan
    finally:
        for name, fn in saved.items():
            setattr(_rewrite, name, fn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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

    spec = bench_anan.MODELS["128"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.onnx"
        onnx.save(bench_anan.build_onnx(spec, 0), path)
        base = anan_onnx.load_base(path)
        params = anan_onnx.AnanParams(k=args.k)
        models = {
            "base": base,
            "anan": _convert(base, params),
            "anan, --fold-steps": anan_onnx.convert_model(base, params, fold_steps=True).anan,
            "no steps": _convert(base, params, shared_steps=_constant_steps),
            "no steps, no scaling": _convert(
                base, params, shared_steps=_constant_steps, blocked_scaling=_bias_only
            ),
        }
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


def _time_in_process(paths: dict[str, str], index: int, spec, args) -> dict[str, list[float]]:
    """One set of sessions in a fresh process (``bench_anan.time_session_set``), created in
    an order rotated by ``index``."""
    rounds = -(-args.rounds // args.processes)
    job = bench_anan.SessionSet(
        paths=paths,
        creation_order=bench_anan.rotated(list(paths), index),
        spec=spec,
        batch=args.batch,
        seed=1,
        threading="spinning" if args.spinning else "no spinning",
        warmup=3,
        min_rounds=rounds,
        max_rounds=rounds,
        budget_s=0,
    )
    return bench_anan.in_fresh_process(bench_anan.time_session_set, job)


if __name__ == "__main__":
    raise SystemExit(main())
