"""Benchmark: ANAN at the cost of the base CNN (onnxruntime, 2 threads), and the paper's loop.

Measures, in one run on one machine, for the paper's base CNN at 128×128 (3×3 filters) and a
224×224 variant (5×5 filters, one extra conv block), with random but seeded weights:

1. latency of the base CNN and of the ANAN model (default options, ``signal=post``,
   ``reduce=max``, and the default parameters with ``scaling='broadcast'`` or with
   ``fold_steps``) at batch 1 and 64, k = 4 and 8, dynamic and fixed batch, interleaved
   in rounds so that every ANAN/base ratio comes from the same minutes of machine time;
2. an onnxruntime profile of the ANAN graph at batch 64 (where the time goes);
3. the paper's per-image procedure in TensorFlow (eager and ``tf.function``: back up the
   first conv's weights, k forward passes with ``set_weights`` between them, predict,
   restore) and the same literal loop in onnxruntime (``LiteralReference``);
4. conversion time (Keras file → ANAN ONNX);
5. cold start and peak RSS of an inference process without TensorFlow, and of one with it.

It writes a Markdown report (``--out``) with a goals table, and optionally all raw timings
as JSON (``--json``). Everything it builds goes to a temporary directory.

Run from the repository root (``benchmarks`` is a package there, nothing to install)::

    .venv/bin/python -m benchmarks.bench --out out/benchmarks.md --json out/bench.json
    .venv/bin/python -m benchmarks.bench --quick --no-tf --models tiny --out /tmp/b.md
    .venv/bin/python -m benchmarks.bench.ablate --batch 1 --rounds 800   # where the overhead goes

Modules, by concern: ``config`` (options, goals, models, command line → ``Plan``),
``models`` (the base CNNs, built by ``anan_onnx.testing``), ``sessions`` (onnxruntime
sessions timed in rounds in fresh processes), one module per section (``latency``,
``profile``, ``loops``, ``conversion``, ``cold_start``), ``environment`` (machine, versions,
code measured), ``goals``, ``report`` (the Markdown renderers), ``stats`` (summaries and
formatting), ``run`` (the whole run; ``__main__`` calls it) and ``ablate`` (a diagnostic
of its own). anan_onnx is imported only inside functions, after ``--git-ref`` has put the
measured commit's package first.
"""
