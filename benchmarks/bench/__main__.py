"""``python -m benchmarks.bench``: runs the benchmark (see the package docstring)."""

from benchmarks.bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
