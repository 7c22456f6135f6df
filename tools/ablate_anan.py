"""Where ANAN's latency overhead goes: the graph with parts of the rewrite taken out.

Converts the benchmark's 128×128 CNN (``tools/bench_anan.py``, ONNX built without
TensorFlow, same seed) with the default parameters, then again with parts of the rewrite
replaced by stand-ins, and times all of them against the base CNN in interleaved rounds
(2 intra-op threads, spinning off, or with ``--spinning`` onnxruntime's default of idle
threads spinning in one global pool, the two ways ``bench_anan.py`` measures):

- ``anan``: the real ANAN model; ``anan, --fold-steps``: the same with the steps folded
  into one lookup (a real option, same outputs);
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
from anan_onnx import _rewrite  # noqa: E402


def _constant_steps(b, tables, activity_of, gains, steps, shared, rule):
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
    parser.add_argument("--rounds", type=int, default=800)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument(
        "--spinning",
        action="store_true",
        help="idle threads spin (onnxruntime's default), one global pool (default: no spinning)",
    )
    args = parser.parse_args(argv)
    threading = "spinning" if args.spinning and bench_anan.use_global_pool() else "no spinning"

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
        "no steps": _convert(base, params, table_steps=_constant_steps),
        "no steps, no scaling": _convert(
            base, params, table_steps=_constant_steps, blocked_scaling=_bias_only
        ),
    }
    runners = {name: bench_anan.make_session(m, threading) for name, m in models.items()}
    x = bench_anan.images(spec, args.batch, 1)
    times = bench_anan.interleave(
        {name: (lambda r=r: r.run(x)) for name, r in runners.items()},
        warmup=3,
        min_rounds=args.rounds,
        max_rounds=args.rounds,
        budget_s=0,
    )
    base_times = np.asarray(times["base"])
    rounds = len(base_times)
    print(f"128×128 CNN, batch {args.batch}, k={args.k}, threads {threading}, {rounds} rounds")
    print("| graph | nodes | ms (median) | / base (median of per-round ratios) |")
    print("|---|---|---|---|")
    for name, model in models.items():
        t = np.asarray(times[name])
        ratio = statistics.median(t / base_times)
        print(f"| {name} | {len(model.graph.node)} | {np.median(t) * 1e3:.3f} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
