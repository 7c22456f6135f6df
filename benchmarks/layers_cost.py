"""Cost of each added ANAN layer (``convert --layers first:N``) in process CPU time, one thread.

    .venv/bin/python -m benchmarks.layers_cost [--models 128,bundled] [--rounds 5]

For each base CNN (``cpu_ratio``'s: ``128``, the benchmark's CNN built in ONNX, and
``bundled``, models/catsdogs_cnn.keras) it converts ``--layers first:1`` ... ``first:N`` (N =
every Conv; default parameters) and times them with the base, interleaved, as
``benchmarks.cpu_ratio`` does (one onnxruntime thread, sequential execution,
``time.process_time``). The table gives the CPU ms per run and the ratio to the base per
number of modulated layers; docs/performance.md quotes it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layered(base: Path, tmp: Path) -> dict[str, Path]:
    """The base and its conversions on the first 1..N Convs, by label."""
    import onnx
    import onnx_ir as ir

    import anan_onnx
    from anan_onnx.rewrite.layers import conv_names

    model = onnx.load(base)
    count = len(conv_names(ir.from_proto(model).graph))
    paths = {"base": base}
    for n in range(1, count + 1):
        anan = anan_onnx.convert_model(model, anan_onnx.AnanParams(), layers=f"first:{n}").anan
        paths[f"{n} layer{'s' if n > 1 else ''}"] = tmp / f"{base.stem}_first{n}.onnx"
        onnx.save(anan, paths[f"{n} layer{'s' if n > 1 else ''}"])
    return paths


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="128,bundled", help="of 128, 224, bundled")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs1", type=int, default=50, help="runs per round at batch 1")
    parser.add_argument("--runs64", type=int, default=1, help="runs per round at batch 64")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import onnxruntime as ort

    sys.path.insert(0, str(ROOT))
    from benchmarks.cpu_ratio import _bases, _measure, _report

    print(f"onnxruntime {ort.__version__}, 1 thread, process CPU time; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bases = _bases(tmp)
        for key in args.models.split(","):
            models = _layered(bases[key], tmp)
            size = 224 if key == "224" else 128
            for batch, runs in ((1, args.runs1), (64, args.runs64)):
                per_round = _measure(models, batch, size, args.rounds, runs)
                label = f"{key} ({size}×{size}), batch {batch}, {args.rounds} rounds of {runs} runs"
                _report(label, per_round)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
