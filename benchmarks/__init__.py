"""Benchmarks: scratchnet against torch eager (and scikit-learn) in the same process (see
``benchmarks/README.md``).

Performance is measured here, never in timed unit tests. ``python -m benchmarks`` regenerates the
committed tables: ``benchmarks.step`` (one training step, ``reports/bench/step.*``) and
``benchmarks.epoch`` (one epoch of ``fit`` vs its steps, torch and scikit-learn,
``reports/bench/epoch.*``). ``benchmarks.profile`` splits one step into its operations;
``benchmarks.speed_check`` is the CI speed regression check.
"""
