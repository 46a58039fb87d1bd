"""Speed regression check: scratchnet / torch step-time ratios against committed ones.

    python -m benchmarks.speed_check            # CI: exit 1 on a large, repeated slowdown
    python -m benchmarks.speed_check --update   # measure and commit benchmarks/speed_baseline.json

In the spirit of pytest-benchmark's ``--benchmark-compare-fail``, but robust to a shared machine:
absolute times drift ±30 % with other processes, so each row is the *ratio* of scratchnet's
median step time to torch eager's, measured interleaved in this one process (the machinery of
:mod:`benchmarks.step`: same model, same data, same threads, ABBA blocks). A row fails only on a
large slowdown that repeats: its ratio above ``LIMIT`` (2) × the committed ratio on ``TRIES``
(2) consecutive measurements. One slow measurement is measured again; a row that comes back under
the limit passes. About 10–20 s for the three rows (tiny net at batch 1, the core float32 MLP at
batch 32 and 128). Nothing here compares absolute times.

Both engines run with ONE thread (numpy's BLAS via threadpoolctl, ``torch.set_num_threads(1)``).
With two threads on a loaded 2-core machine the ratio measures the load, not the code: torch's
OpenMP workers wait at barriers for a descheduled partner, and at load average 6 its batch-32 step
became ~7× slower while scratchnet's became ~1.5× slower (ratio 0.105 against ~0.7 on an idle
machine). Single-threaded, both engines are slowed alike by time slicing, and a slowdown of
scratchnet's own code shows in the ratio just the same.

Why 2× and not 1.5×: even single-threaded, at load average 6 on this 2-core machine (7 engineers'
test runs) the ratios moved between 0.67× and 1.69× of a baseline measured minutes earlier under
the same load (the batch-128 row twice in a row at 1.62–1.69×), so 1.5× would fail CI on noise. A
planted 4× slowdown of the step fails the check (``tests/test_speed_regression.py``); a 3× one
came back within the limit in 2 of ~20 runs on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .step import (
    TINY,
    Case,
    _atomic_write,
    _steady_seconds,
    cpu_name,
    interleaved,
    make_scratchnet,
    make_torch,
    source_commit,
    threads_set,
)

__all__ = ["ROWS", "BASELINE", "LIMIT", "TRIES", "Verdict", "measure_ratio", "judge", "check", "main"]

ROWS: dict[str, Case] = {
    "tiny 8-8-8-2 b1 float32 sgd": Case(sizes=TINY, batch=1),
    "784-256-128-10 b32 float32 relu softmax+CE sgd": Case(batch=32),
    "784-256-128-10 b128 float32 relu softmax+CE sgd": Case(batch=128),
}
BASELINE = Path(__file__).with_name("speed_baseline.json")
LIMIT = 2.0
TRIES = 2
THREADS = 1


def measure_ratio(case: Case, budget_s: float = 0.5) -> float:
    """Median scratchnet step time over median torch step time, interleaved blocks of ~50 ms
    (``budget_s`` of timed steps per engine, at least 4 blocks each)."""
    net, s_step = make_scratchnet(case)
    _, t_step = make_torch(case, net.state_dict())
    est = max(_steady_seconds(s_step, 0.1), _steady_seconds(t_step, 0.1))
    per_block = min(2000, max(5, math.ceil(0.05 / est)))
    blocks = max(4, round(budget_s / (per_block * est)))
    ts, tt = interleaved((s_step, t_step), blocks, per_block, discard=max(2, math.ceil(0.002 / est)))
    return float(np.median(ts) / np.median(tt))


@dataclass(frozen=True)
class Verdict:
    """One row's outcome: the committed ratio, the ratios measured, and whether it failed."""

    row: str
    baseline: float
    measured: tuple[float, ...]
    failed: bool

    def line(self) -> str:
        ratios = ", ".join(f"{r:.3f} ({r / self.baseline:.2f}×)" for r in self.measured)
        return f"{'SLOWER' if self.failed else 'ok':6s} {self.row:50s} baseline {self.baseline:.3f}; measured {ratios}"


def judge(row: str, baseline: float, measure: Callable[[], float], limit: float = LIMIT,
          tries: int = TRIES) -> Verdict:
    """Measure up to ``tries`` times, stopping at the first ratio within ``limit × baseline``;
    failed only if all ``tries`` consecutive measurements exceed it."""
    measured = []
    for _ in range(tries):
        measured.append(measure())
        if measured[-1] <= limit * baseline:
            return Verdict(row, baseline, tuple(measured), failed=False)
    return Verdict(row, baseline, tuple(measured), failed=True)


def check(baseline: Mapping[str, float], rows: Mapping[str, Case] = ROWS, budget_s: float = 0.4,
          limit: float = LIMIT, tries: int = TRIES) -> list[Verdict]:
    """Every row of ``baseline`` (its committed ratio) judged against fresh measurements, one
    thread for both engines."""
    unknown = set(baseline) - set(rows)
    if unknown:
        raise KeyError(f"baseline rows {sorted(unknown)} are not rows of the check ({sorted(rows)})")
    with threads_set(THREADS):
        return [judge(name, base, lambda c=rows[name]: measure_ratio(c, budget_s), limit, tries)
                for name, base in baseline.items()]


def load_baseline(path: Path = BASELINE) -> dict[str, float]:
    return {k: float(v) for k, v in json.loads(path.read_text())["ratios"].items()}


def write_baseline(path: Path, rows: Mapping[str, Case], budget_s: float, repeats: int = 3) -> dict[str, float]:
    """Measure every row ``repeats`` times and commit the median ratio, with what it ran on."""
    commit = source_commit()
    with threads_set(THREADS):
        ratios = {name: float(np.median([measure_ratio(c, budget_s) for _ in range(repeats)]))
                  for name, c in rows.items()}
    doc = {"about": "scratchnet / torch median step-time ratios for benchmarks.speed_check "
                    "(python -m benchmarks.speed_check --update)",
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "git_commit": commit,
           "cpu": cpu_name(), "threads": THREADS, "load average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
           "limit": LIMIT, "tries": TRIES, "ratios": ratios}
    _atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="measure and write the baseline instead of checking")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--budget", type=float, default=0.4, help="seconds of timed steps per engine and row")
    args = parser.parse_args(argv)
    if args.update:
        ratios = write_baseline(args.baseline, ROWS, args.budget)
        print("\n".join(f"{k}: {v:.3f}" for k, v in ratios.items()), f"\nwrote {args.baseline}")
        return 0
    verdicts = check(load_baseline(args.baseline), budget_s=args.budget)
    print(f"speed check (scratchnet/torch step-time ratio; fails above {LIMIT}× the committed ratio "
          f"{TRIES} times in a row), load average {os.getloadavg()[0]:.2f}:")
    print("\n".join(v.line() for v in verdicts))
    return 1 if any(v.failed for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
