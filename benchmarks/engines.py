"""Per-engine cost of the astrocytes: ANAN/base CPU time on onnxruntime, OpenVINO (float32),
tract and LiteRT, at batch 1 and 16, for the defaults and each non-default option.

    .venv/bin/python benchmarks/engines.py --out out/engines.md              # ~10-20 min
    .venv/bin/python benchmarks/engines.py --size 32 --rounds 5 --out /tmp/e.md   # smoke run

For each engine, option set and batch, the base CNN and its ANAN model run alternately
(base, ANAN, base, ANAN ...) for ``--rounds`` rounds after a warm-up, each on ONE thread,
timed in CPU seconds (``time.process_time``; LiteRT inside its own process,
``_litert_child.py time``), so that a shared, loaded machine slows both alike; the ratio is
the median of the per-round ratios ANAN/base (the milliseconds are each model's median).
The model is the paper's kind of base CNN (``anan_onnx.testing.build_base_cnn``: NHWC, 3x3
filters 32-64-128, seeded); ``fold_steps`` is the defaults with ``--fold-steps``. On
onnxruntime it also reports the first layer's share of the base CNN's time (its Conv, and
one more pass over that Conv's output): the floors of the options that add such work. LiteRT needs
tools/litert_venv.sh; an engine that is missing is left out with its reason in the report.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anan_onnx import AnanParams, convert_model  # noqa: E402
from anan_onnx.runtime.engines import EngineUnavailable  # noqa: E402
from anan_onnx.testing import build_base_cnn  # noqa: E402

#: option set -> AnanParams keywords: the defaults, then each non-default rule, counter,
#: reduce and signal on its own, and ``fold_steps`` (a convert option, see CONVERT_FIELDS)
OPTION_SETS: dict[str, dict[str, object]] = {
    "defaults": {},
    "rule=additive": {"rule": "additive"},
    "counter=clamp": {"counter": "clamp"},
    "reduce=max": {"reduce": "max"},
    "reduce=majority": {"reduce": "majority"},
    "signal=post": {"signal": "post"},
    "fold_steps": {"fold_steps": True},
}
#: keywords of OPTION_SETS that are ConvertOptions fields rather than AnanParams
CONVERT_FIELDS = ("fold_steps",)
ENGINES = ("ort", "openvino", "tract", "litert")
BATCHES = (1, 16)


def runner(engine: str, model: Path, batch: np.ndarray) -> Callable[[], object]:
    """A zero-argument function that runs ``model`` on ``batch`` once, on one thread."""
    if engine == "ort":
        from benchmarks.ort_session import open_session

        session = open_session(model, threads=1, inter_threads=1)
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: batch})
    if engine == "openvino":
        import openvino as ov

        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
        compiled = ov.Core().compile_model(str(model), "CPU", config)
        request = compiled.create_infer_request()
        return lambda: request.infer([batch])
    from anan_onnx.runtime.engines.tract import Tract

    runnable = Tract()._load(model, batch.shape, "f32")
    return lambda: runnable.run([batch])


def time_in_process(engine: str, base: Path, anan: Path, x: np.ndarray, rounds: int):
    return interleaved({"base": runner(engine, base, x), "anan": runner(engine, anan, x)}, rounds)


def interleaved(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """CPU seconds of each run per round, the runs taking turns within a round (so that a
    round's runs share the machine's load), after two warm-up rounds."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(rounds + 2):
        for name, run in runs.items():
            start = time.process_time()
            run()
            if round_ >= 2:
                times[name].append(time.process_time() - start)
    return times


def time_litert(base: Path, anan: Path, x: np.ndarray, rounds: int, work: Path):
    from anan_onnx.export.shapes import fix_batch
    from anan_onnx.runtime.engines.litert import CHILD, LiteRT

    litert, files = LiteRT(), []
    for model in (base, anan):  # XNNPACK cannot always resize a batch: fix it, as export does
        proto = onnx.load(model)
        fix_batch(proto, len(x))
        fixed = work / f"{model.stem}.{len(x)}.onnx"
        onnx.save(proto, fixed)
        files.append(litert.tflite(fixed, fixed.with_suffix(".tflite")))
    np.save(work / "batch.npy", x)
    proc = subprocess.run(
        [str(litert.python), str(CHILD), "time", *map(str, files), str(work / "batch.npy"),
         str(rounds)],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"LiteRT timing failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Markdown report")
    parser.add_argument("--size", type=int, default=128, help="input size (default 128)")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args()
    unknown = sorted(set(args.engines.split(",")) - set(ENGINES))
    if unknown:  # runner() would time tract under that name
        print(f"unknown engine {unknown[0]}: pick from {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    rows: list[tuple] = []
    missing: dict[str, str] = {}
    floors = {}
    with tempfile.TemporaryDirectory(prefix="anan_bench_engines_") as folder:
        work = Path(folder)
        base, anan = convert_all(build_base_cnn(args.size, 3, (32, 64, 128), seed=0), work)
        for batch in BATCHES:
            x = rng.random((batch, args.size, args.size, 3), dtype=np.float32)
            if "ort" in args.engines.split(","):
                floors[batch] = first_layer_shares(base, x, args.rounds, work)
            for engine in args.engines.split(","):
                for option in OPTION_SETS:
                    if engine not in missing:
                        rows += measure(engine, option, (base, anan[option]), x, args.rounds,
                                        work, missing)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(rows, missing, args, floors))
    return 0


def convert_all(base_model: onnx.ModelProto, work: Path) -> tuple[Path, dict[str, Path]]:
    """The base model's file and each option set's ANAN model file, in ``work``."""
    base = work / "base.onnx"
    onnx.save(convert_model(base_model, AnanParams()).base, base)
    anan = {}
    for option, kwargs in OPTION_SETS.items():
        anan[option] = work / f"{option.replace('=', '_')}.anan.onnx"
        params = {k: v for k, v in kwargs.items() if k not in CONVERT_FIELDS}
        fields = {k: v for k, v in kwargs.items() if k in CONVERT_FIELDS}
        converted = convert_model(base_model, AnanParams(**params), **fields)  # type: ignore[arg-type]
        onnx.save(converted.anan, anan[option])
    return base, anan


def measure(
    engine: str,
    option: str,
    pair: tuple[Path, Path],
    x: np.ndarray,
    rounds: int,
    work: Path,
    missing: dict[str, str],
) -> list[tuple]:
    """The report row of one engine, option set and batch (none where the engine is
    missing: its reason lands in ``missing``)."""
    batch = len(x)
    try:
        if engine == "litert":
            t = time_litert(*pair, x, rounds, work)
        else:
            t = time_in_process(engine, *pair, x, rounds)
    except (EngineUnavailable, ImportError) as exc:
        missing[engine] = str(exc).splitlines()[0]
        return []
    except RuntimeError as exc:  # a model the engine cannot run: say so
        print(f"{engine:8} batch {batch:2} {option:16} FAILED {exc}", flush=True)
        return [(engine, batch, option, None, None, str(exc)[:120])]
    b, a = statistics.median(t["base"]), statistics.median(t["anan"])
    ratio = statistics.median(
        y / x for x, y in zip(t["base"], t["anan"], strict=True)
    )  # per-round ratios: both models of a round ran under the same load
    print(f"{engine:8} batch {batch:2} {option:16} base {b * 1e3:8.2f} ms "
          f"ANAN {a * 1e3:8.2f} ms  x{ratio:.2f}", flush=True)  # fmt: skip
    return [(engine, batch, option, b * 1e3, a * 1e3, ratio)]


def first_layer_shares(base: Path, x: np.ndarray, rounds: int, work: Path) -> dict[str, float]:
    """What the first layer's work costs, as fractions of the base CNN's time on onnxruntime
    (one thread, interleaved rounds, medians of per-round fractions): ``conv`` = the base up
    to the first Conv, read once by a GlobalAveragePool (what a second response of that
    layer costs, e.g. the additive rule's W⁻ part), ``pass`` = one more read of that Conv's
    output map (a GlobalMaxPool beside it: what each extra pass over the map costs, e.g. a
    step's activity under signal=post). Each model ends in small outputs, as the base
    does: a model that returned the map itself would also pay for copying it out."""
    from onnx import helper, utils

    model = onnx.load(base)
    conv = next(n for n in model.graph.node if n.op_type == "Conv").output[0]
    head = utils.Extractor(model).extract_model([model.graph.input[0].name], [conv])
    paths = {"base": base}
    for name, reads in (("once", ["GlobalAveragePool"]), ("twice", ["GlobalAveragePool",
                                                                    "GlobalMaxPool"])):  # fmt: skip
        variant = onnx.ModelProto()
        variant.CopyFrom(head)
        del variant.graph.output[:]
        for i, op in enumerate(reads):
            variant.graph.node.append(helper.make_node(op, [conv], [f"read{i}"]))
            variant.graph.output.append(helper.make_empty_tensor_value_info(f"read{i}"))
        paths[name] = work / f"first_layer_{name}.onnx"
        onnx.save(variant, paths[name])
    times = interleaved({name: runner("ort", path, x) for name, path in paths.items()}, rounds)
    rounds_ = list(zip(times["base"], times["once"], times["twice"], strict=True))
    return {  # medians of per-round fractions (the models of a round share the machine's load)
        "conv": statistics.median(o / b for b, o, _ in rounds_),
        "pass": statistics.median((t - o) / b for b, o, t in rounds_),
    }


def report(
    rows: list[tuple],
    missing: dict[str, str],
    args: argparse.Namespace,
    floors: dict[int, dict[str, float]] | None = None,
) -> str:
    lines = [
        f"Machine: {platform.machine()}, {platform.processor() or 'CPU'}, "
        f"Python {platform.python_version()}; command: `{' '.join(sys.argv)}`; "
        f"one thread per engine, CPU time, {args.rounds} interleaved rounds; ms: medians, "
        "ANAN/base: median of the per-round ratios.",
        "",
        "| engine | batch | options | base ms | ANAN ms | ANAN/base |",
        "|---|---|---|---|---|---|",
    ]
    for engine, batch, option, base_ms, anan_ms, ratio in rows:
        if base_ms is None:
            lines.append(f"| {engine} | {batch} | {option} | – | – | failed: {ratio} |")
        else:
            lines.append(
                f"| {engine} | {batch} | {option} | {base_ms:.2f} | {anan_ms:.2f} | {ratio:.2f} |"
            )
    lines += [f"\n{engine}: not measured ({why})" for engine, why in missing.items()]
    for batch, share in (floors or {}).items():
        lines.append(
            f"\nonnxruntime, batch {batch}: the first Conv (with the input transpose and one "
            f"read of its output) is {share['conv']:.1%} of the base CNN's time; one more "
            f"pass over its output map {share['pass']:.1%}."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
