"""Developer infrastructure (the test command, the C++ SDK fetcher, the documentation
generators), run from the repository root; see tools/README.md."""
