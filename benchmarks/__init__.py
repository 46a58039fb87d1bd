"""Benchmarks: scratchnet against torch eager in the same process (see ``benchmarks/README.md``).

Performance is measured here, never in timed unit tests. ``python -m benchmarks.step`` times one
training step of both engines, interleaved, and writes ``reports/bench/step.{csv,md}``.
"""
