"""Grading throughput: submissions per second at 1 and 2 local workers, and each child's peak memory.

::

    python -m benchmarks.grade                   # → reports/grade/benchmark.md
    python -m benchmarks.grade --copies 2 --out /tmp/bench

The submissions are the first ``--limit`` of the worked class's graded ones (``examples/class``; the
hang, crashes and memory hog left out: they measure the limits, not the grading), ``--copies`` times
each, graded with the class's course file on a ``concurrent.futures`` pool of 1, then 2 workers
(the engine of ``scratchnet-conformance grade``; ``--dask 1 2``: also on a Dask ``LocalCluster``,
whose threaded worker starts each child as a fresh interpreter). Memory per worker is the peak
resident set of each submission's own child process (``ru_maxrss`` from ``wait4``): the pool worker
only waits on it. The report starts with what it was measured on — the commit (``+dirty`` if the
tree had changes: commit first), CPU, the load average before and after (this machine is shared: a busy one slows both
rows and most of all the 2-worker one).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from scratchnet.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]
CLASS = ROOT / "examples" / "class"
NOT_GRADED = {"noah_fischer", "olivia_grant", "pat_moreau", "quinn_ali", "rosa_silva"}


def submissions(limit: int) -> list[Path]:
    found = sorted(p for p in (CLASS / "submissions").iterdir() if p.name.removesuffix(".py") not in NOT_GRADED)
    return found[:limit]


def measure(workers: int, copies: int, limit: int, dask: bool = False) -> dict[str, float]:
    from scratchnet_reference.grade.course import load_course
    from scratchnet_reference.grade.engine import run
    from scratchnet_reference.grade.isolate import pack

    course = load_course(CLASS / "course.toml")
    tasks = []
    for copy in range(copies):
        for path in submissions(limit):
            task = pack(path, course)
            task.student = f"{task.student}-{copy}"
            tasks.append(task)
    if dask:  # one Dask worker process with `workers` threads: each child a fresh interpreter
        from distributed import LocalCluster

        with LocalCluster(n_workers=1, threads_per_worker=workers, processes=True, dashboard_address=None) as cluster:
            start = time.perf_counter()
            results = run(tasks, scheduler=cluster.scheduler_address)
            wall = time.perf_counter() - start
    else:
        start = time.perf_counter()
        results = run(tasks, workers=workers)
        wall = time.perf_counter() - start
    graded = [r for r in results if r.status == "graded"]
    if len(graded) != len(tasks):
        raise RuntimeError(f"{len(tasks) - len(graded)} submissions not graded: "
                           + "; ".join(f"{r.student} {r.status} {r.detail}" for r in results if r.status != "graded"))
    rss = [r.peak_rss_mb for r in results]
    seconds = [r.seconds for r in results]
    return dict(engine="dask LocalCluster" if dask else "process pool", workers=workers,
                submissions=len(tasks), wall_s=wall, per_second=len(tasks) / wall,
                child_s_median=statistics.median(seconds), rss_median_mb=statistics.median(rss), rss_max_mb=max(rss))


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def report(rows: list[dict[str, float]], header: dict[str, str]) -> str:
    lines = ["# Grading throughput (`python -m benchmarks.grade`)", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()] + [""]
    lines += ["| engine | workers | submissions | wall (s) | submissions/s | child wall median (s) "
              "| child peak RSS median (MiB) | child peak RSS max (MiB) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['workers']} | {r['submissions']} | {r['wall_s']:.1f} | "
                     f"{r['per_second']:.3f} | "
                     f"{r['child_s_median']:.1f} | {r['rss_median_mb']:.0f} | {r['rss_max_mb']:.0f} |")
    lines += ["", "The wall time includes starting the engine: a pool worker imports torch and the checks once "
              "(then forks each submission's process from there); a Dask worker starts a fresh interpreter "
              "per submission, which imports them every time (the child wall column). On a shared machine "
              "(see the load average: above the 2 cores, other jobs take the second core) 2 workers cannot "
              "do twice the work of 1."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from scratchnet_reference.reports.metadata import git_commit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=1, help="each submission this many times (default 1)")
    parser.add_argument("--limit", type=int, default=16, help="the first N graded submissions of the class "
                                                             "(default 16: all of them)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dask", type=int, nargs="*", default=[], metavar="THREADS",
                        help="also on a Dask LocalCluster of one worker with each number of threads")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "grade")
    args = parser.parse_args(argv)
    header = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_commit": git_commit(ROOT),
              "cpu": f"{_cpu()} × {os.cpu_count()}", "platform": platform.platform(),
              "python": platform.python_version(), "load average before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    rows = []
    for workers, dask in [(w, False) for w in args.workers] + [(w, True) for w in args.dask]:
        rows.append(measure(workers, args.copies, args.limit, dask))
        print(f"{rows[-1]['engine']}, {workers} worker(s): {rows[-1]['per_second']:.3f} submissions/s, "
              f"child peak RSS median {rows[-1]['rss_median_mb']:.0f} MiB", flush=True)
    header["load average after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "benchmark.md", report(rows, header))
    buf = [",".join(rows[0])] + [",".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values())
                                 for r in rows]
    atomic_write(args.out / "benchmark.csv", "\n".join(buf) + "\n")
    print(f"wrote {args.out / 'benchmark.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
