"""``python -m tools.bench``: runs the benchmark (see the package docstring)."""

from tools.bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
