"""Scripts and the benchmark package, run from the repository root (``python -m tools.bench``)."""
