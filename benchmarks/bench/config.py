"""What the benchmark measures: options, goals, models, and the command line (a ``Plan``)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PROG = "python -m benchmarks.bench"
DESCRIPTION = (
    "Benchmark: ANAN at the cost of the base CNN (onnxruntime, 2 threads), and the paper's loop."
)
THREADS = 2
#: pause before each timed call of the per-image loops: onnxruntime's own threads (the
#: literal loop's session spins) and TF's go idle meanwhile
LOOP_PAUSE_S = 0.1
OPTIONS: dict[str, dict[str, str]] = {
    "default": {},
    "signal=post": {"signal": "post"},
    "reduce=max": {"reduce": "max"},
    "scaling=broadcast": {},  # default parameters, the plain final scaling (not blocked)
    "fold_steps": {},  # default parameters, the k steps folded into one product
}
#: conversion options (not ANAN parameters) of an option
CONVERT_OPTIONS: dict[str, dict[str, Any]] = {
    "scaling=broadcast": {"scaling": "broadcast"},
    "fold_steps": {"fold_steps": True},
}
MODES = ("dynamic", "fixed")
#: How the sessions' threads wait between runs (see ``Runner``); the goals use the first.
THREADINGS = ("spinning", "no spinning")
GOALS = {
    "fixed64": 1.10,
    "dynamic64": 1.25,
    "batch1": 1.10,
    "heavy64": 1.50,
    "throughput": 20.0,
    "cold_s": 0.5,
    "rss_mb": 150.0,
    "convert_s": 10.0,
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A base CNN: [Conv(k×k) → ReLU → MaxPool 2] per filter count → Flatten → Dense → sigmoid."""

    name: str
    size: int
    kernel: int
    filters: tuple[int, ...]
    dense: int = 128

    def describe(self) -> str:
        """E.g. ``128×128, 3×3, conv 32/64/128, dense 128``."""
        convs = "/".join(str(f) for f in self.filters)
        return (
            f"{self.size}×{self.size}×3, {self.kernel}×{self.kernel} filters, "
            f"conv {convs} (valid, ReLU, maxpool 2), dense {self.dense} ReLU, dense 1 sigmoid"
        )


MODELS = {
    "128": ModelSpec("128", 128, 3, (32, 64, 128)),
    "224": ModelSpec("224", 224, 5, (32, 64, 128, 256)),
    "tiny": ModelSpec("tiny", 32, 3, (32, 64, 128)),
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to measure and how often (full run or ``--quick``)."""

    models: tuple[str, ...]
    batches: tuple[int, ...]
    ks: tuple[int, ...]
    use_tf: bool
    quick: bool
    seed: int
    warmup: int
    min_rounds: int
    max_rounds_b1: int
    max_rounds_big: int
    budget_b1_s: float
    budget_big_s: float
    session_sets_b1: int
    session_sets_big: int
    loop_images: int
    conversion_reps: int
    cold_reps: int
    profile_runs: int


def make_plan(args: argparse.Namespace) -> Plan:
    """Turns the command line into a ``Plan`` (``--quick`` picks small counts)."""
    quick = bool(args.quick)
    models = (
        tuple(args.models.split(",")) if args.models else (("128",) if quick else ("128", "224"))
    )
    ks = tuple(int(k) for k in args.ks.split(",")) if args.ks else ((4,) if quick else (4, 8))
    batches = tuple(int(b) for b in args.batches.split(","))
    return Plan(
        models=models,
        batches=batches,
        ks=ks,
        use_tf=not args.no_tf,
        quick=quick,
        seed=args.seed,
        warmup=1 if quick else 3,
        min_rounds=2 if quick else 5,
        max_rounds_b1=10 if quick else 400,
        max_rounds_big=2 if quick else 30,
        budget_b1_s=0.5 if quick else 6.0,
        budget_big_s=1.0 if quick else 25.0,
        session_sets_b1=2 if quick else 4,
        session_sets_big=2,
        loop_images=2 if quick else 8,
        conversion_reps=1 if quick else 3,
        cold_reps=1 if quick else 5,
        profile_runs=2 if quick else 5,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 128×128 only, k=4, few reps")
    p.add_argument(
        "--no-tf",
        action="store_true",
        help="never import TensorFlow: build the CNNs directly in ONNX, skip the TF loops "
        "and the TF process",
    )
    p.add_argument(
        "--models", help=f"comma list of {', '.join(MODELS)} (default: 128,224; --quick: 128)"
    )
    p.add_argument("--ks", help="comma list of k (default: 4,8; --quick: 4)")
    p.add_argument("--batches", default="1,64", help="comma list of batch sizes (default: 1,64)")
    p.add_argument(
        "--git-ref",
        help="measure anan_onnx as committed at this ref (e.g. HEAD; extracted with git "
        "archive) instead of the working tree",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default: 0)")
    p.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "out" / "benchmarks.md",
        help="report path (default: out/benchmarks.md; docs/performance.md cites the figures)",
    )
    p.add_argument("--json", type=Path, help="also write all raw timings here")
    args = p.parse_args(argv)
    for name in (args.models or "").split(","):
        if name and name not in MODELS:
            p.error(f"--models: unknown model {name!r}; choose from {', '.join(MODELS)}")
    for flag, text in (("--ks", args.ks), ("--batches", args.batches)):
        if text and not all(v.strip().isdigit() and int(v) > 0 for v in text.split(",")):
            p.error(f"{flag} must be a comma list of positive integers, got {text!r}")
    return args
