"""Per-engine cost of the astrocytes: ANAN/base CPU time on onnxruntime, OpenVINO (float32),
tract and LiteRT, at batch 1 and 16, for the defaults and each non-default option.

    .venv/bin/python benchmarks/engines.py --out out/engines.md              # ~10-20 min
    .venv/bin/python benchmarks/engines.py --size 32 --rounds 5 --out /tmp/e.md   # smoke run

For each engine, option set and batch, the base CNN and its ANAN model run alternately
(base, ANAN, base, ANAN ...) for ``--rounds`` rounds after a warm-up, each on ONE thread,
timed in CPU seconds (``time.process_time``; LiteRT inside its own process,
``_litert_child.py time``), so that a shared, loaded machine slows both alike; the ratio is
median(ANAN) / median(base) of the same rounds. The model is the paper's kind of base CNN
(``anan_onnx.testing.build_base_cnn``: NHWC, 3x3 filters 32-64-128, seeded). LiteRT needs
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
#: reduce and signal on its own
OPTION_SETS: dict[str, dict[str, str]] = {
    "defaults": {},
    "rule=additive": {"rule": "additive"},
    "counter=clamp": {"counter": "clamp"},
    "reduce=max": {"reduce": "max"},
    "reduce=majority": {"reduce": "majority"},
    "signal=post": {"signal": "post"},
}
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
    runs = {"base": runner(engine, base, x), "anan": runner(engine, anan, x)}
    times: dict[str, list[float]] = {"base": [], "anan": []}
    for round_ in range(rounds + 2):  # two warm-up rounds
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Markdown report")
    parser.add_argument("--size", type=int, default=128, help="input size (default 128)")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base_model = build_base_cnn(args.size, 3, (32, 64, 128), seed=0)
    rows, missing = [], {}
    with tempfile.TemporaryDirectory(prefix="anan_bench_engines_") as folder:
        work = Path(folder)
        base = work / "base.onnx"
        onnx.save(convert_model(base_model, AnanParams()).base, base)
        anan = {}
        for option, kwargs in OPTION_SETS.items():
            anan[option] = work / f"{option.replace('=', '_')}.anan.onnx"
            onnx.save(convert_model(base_model, AnanParams(**kwargs)).anan, anan[option])  # type: ignore[arg-type]
        for batch in BATCHES:
            x = rng.random((batch, args.size, args.size, 3), dtype=np.float32)
            for engine in args.engines.split(","):
                for option in OPTION_SETS:
                    if engine in missing:
                        continue
                    try:
                        if engine == "litert":
                            t = time_litert(base, anan[option], x, args.rounds, work)
                        else:
                            t = time_in_process(engine, base, anan[option], x, args.rounds)
                    except (EngineUnavailable, ImportError) as exc:
                        missing[engine] = str(exc).splitlines()[0]
                        continue
                    except RuntimeError as exc:  # a model the engine cannot run: say so
                        rows.append((engine, batch, option, None, None, str(exc)[:120]))
                        print(f"{engine:8} batch {batch:2} {option:16} FAILED {exc}", flush=True)
                        continue
                    b, a = statistics.median(t["base"]), statistics.median(t["anan"])
                    rows.append((engine, batch, option, b * 1e3, a * 1e3, a / b))
                    print(f"{engine:8} batch {batch:2} {option:16} base {b * 1e3:8.2f} ms "
                          f"ANAN {a * 1e3:8.2f} ms  x{a / b:.2f}", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(rows, missing, args))


def report(rows: list[tuple], missing: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        f"Machine: {platform.machine()}, {platform.processor() or 'CPU'}, "
        f"Python {platform.python_version()}; command: `{' '.join(sys.argv)}`; "
        f"one thread per engine, CPU time, {args.rounds} interleaved rounds, median.",
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
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
