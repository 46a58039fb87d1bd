"""``scratchnet-conformance grade SUBMISSION…``: grade a class, each submission in its own limited process.

::

    scratchnet-conformance grade submissions/*/ --course course.toml --out grades/
    scratchnet-conformance grade submissions/*/ --workers 4
    scratchnet-conformance grade submissions/*/ --scheduler tcp://10.0.0.5:8786   # a Dask cluster

Prints progress with the time left, then the statuses and the most frequent mistakes; writes the
outputs of :mod:`.outputs`. Exit 0 when every submission got a result (however wrong its code); 2 for
bad arguments or a course file that cannot be used.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..console import PROG, ProgressBar, UsageError, bounded

__all__ = ["add_grade_parser", "cmd_grade", "grade_class"]


def add_grade_parser(sub: Any) -> argparse.ArgumentParser:
    grade = sub.add_parser("grade", help="grade a class: many submissions, each isolated, in parallel",
                           description="Check every submission's op functions (and network adapter) against torch, "
                                       "each in its own process with a time and memory limit, and write grades.csv, "
                                       "a misconception table, per-student feedback and Gradescope results.json.")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                       help="a submission: a folder (its .py files) or a single .py file; the student's id is "
                            "the folder's name or the file's stem")
    grade.add_argument("--course", metavar="FILE", default=None,
                       help="the course file (TOML or JSON): the course's names for the ops, required checks, "
                            "hint levels, points, limits (see scratchnet_reference/grade/course.py)")
    grade.add_argument("--out", default="grades", help="output folder (default: grades/)")
    grade.add_argument("--workers", type=bounded(int, 1), default=None,
                       help="local processes grading at once (default: the CPU count)")
    grade.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="a Dask distributed scheduler (tcp://host:8786) to run the gradings on, instead of "
                            "local processes (pip install 'scratchnet[grade]')")
    grade.add_argument("--seconds", type=bounded(float, 1), default=None,
                       help="time limit per submission (default: the course file's, else 60)")
    grade.add_argument("--memory-mb", type=bounded(int, 256), default=None,
                       help="address-space limit per submission in MiB (default: the course file's, else 4096)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.set_defaults(func=cmd_grade)
    return grade


def grade_class(submissions: list[str | Path], course: Any, *, workers: int = 1, scheduler: str | None = None,
                progress: ProgressBar | None = None) -> list[Any]:
    """Pack and grade ``submissions`` with ``course``; the results sorted by student."""
    from .engine import run
    from .isolate import pack

    tasks = [pack(path, course) for path in submissions]
    students = Counter(task.student for task in tasks)
    twice = sorted(s for s, n in students.items() if n > 1)
    if twice:
        raise UsageError(f"{PROG} grade: two submissions have the same id {twice} (ids are folder names or file "
                         "stems): rename one")

    def tick(done: int, result: Any) -> None:
        if progress is not None:
            progress.update(done, f"{result.student}: {result.status}")

    return run(tasks, workers=workers, scheduler=scheduler, progress=tick)


def cmd_grade(args: argparse.Namespace) -> int:
    from .course import CourseError, load_course
    from .outputs import misconception_rows, write_outputs

    try:
        course = load_course(args.course)
    except CourseError as exc:
        raise UsageError(f"{PROG} grade: {exc}") from None
    if args.seconds is not None:
        course.seconds = float(args.seconds)
    if args.memory_mb is not None:
        course.memory_mb = int(args.memory_mb)
    missing = [s for s in args.submissions if not Path(s).exists()]
    if missing:
        raise UsageError(f"{PROG} grade: no such submission: {', '.join(missing)}")
    if args.scheduler:
        try:
            import distributed  # noqa: F401
        except ModuleNotFoundError:
            raise UsageError(f"{PROG} grade --scheduler needs Dask distributed: pip install 'scratchnet[grade]'") \
                from None
    workers = args.workers or min(len(args.submissions), os.cpu_count() or 1)
    where = f"the Dask cluster at {args.scheduler}" if args.scheduler else f"{workers} local process(es)"
    print(f"grading {len(args.submissions)} submissions on {where}; limits {course.seconds:g} s, "
          f"{course.memory_mb} MiB each")
    progress = ProgressBar(len(args.submissions), enabled=not args.no_progress, unit="submissions")
    start = time.perf_counter()
    results = grade_class(args.submissions, course, workers=workers, scheduler=args.scheduler, progress=progress)
    wall = time.perf_counter() - start
    written = write_outputs(results, course, args.out)
    statuses = Counter(r.status for r in results)
    print(f"{len(results)} submissions in {wall:.1f} s ({len(results) / wall:.2f}/s): "
          + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    top = [r for r in misconception_rows(results) if r["students"] != "0"][:8]
    if top:
        print("most frequent mistakes: " + "; ".join(f"{r['kind']} {r['students']}" for r in top))
    print(f"wrote {written['grades']}, {written['misconceptions_md']}, {written['misconceptions_png']}, "
          f"{Path(args.out) / 'feedback'}/, {Path(args.out) / 'gradescope'}/")
    return 0
