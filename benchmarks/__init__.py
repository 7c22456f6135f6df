"""Benchmarks (``python -m benchmarks.bench`` and the ratio and throughput scripts), run
from the repository root; see benchmarks/README.md."""
