"""One submission in its own OS process with a time and a memory limit — whatever engine runs the task.

:func:`pack` reads a submission (a folder or one ``.py`` file) into a :class:`Task` that carries its
files as bytes, so the task runs anywhere: a local pool worker or a Dask worker on another machine.
:func:`grade_task` writes the files into a fresh temporary folder and starts the submission's own
process, in a new session: it sets ``RLIMIT_AS`` and ``RLIMIT_CPU`` on itself before it imports
anything of the student's (:mod:`.child`). Where the calling process is single-threaded and has
imported torch and the checks already (a local pool worker after :func:`warm_up`) that process is
``os.fork``-ed — the child starts with torch loaded, which saves the 5–8 s ``import torch`` and
``torch.use_deterministic_algorithms`` take in a fresh interpreter, and is still a process of its
own that ends with ``os._exit``; anywhere else (a Dask worker has threads, and forking a threaded
process can deadlock the child) a fresh ``python -m scratchnet_reference.grade.child``. Either way
it waits with ``os.wait4``, which also gives the child's own peak resident memory. Past the wall-clock limit
the child's whole process group is killed. No result file means the child hung, crashed, was
killed for memory, or called ``os._exit``: the :class:`~.results.SubmissionResult` says which.
BLAS and OpenMP run one thread per child (``*_NUM_THREADS=1``): the pool is the parallelism, and
one thread makes every sum add in the same order, so two gradings agree bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .course import Course
from .results import SubmissionResult

__all__ = ["Task", "pack", "grade_task", "warm_up", "can_fork", "MAX_SUBMISSION_BYTES", "OUTPUT_CHARS", "THREADS"]

#: a submission larger than this is refused before it is copied (data sets and checkpoints do not belong in it)
MAX_SUBMISSION_BYTES = 8 * 1024 * 1024
#: the tail of the student's own prints kept in the result
OUTPUT_CHARS = 2000
_SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".venv", "venv", "node_modules"}
THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class Task:
    """Everything one grading needs: the student's id, their files and the course's settings."""

    student: str
    files: dict[str, bytes]
    course: dict[str, Any]
    problem: str = ""  # set when the submission could not even be packed (too large, unreadable)


def pack(path: str | Path, course: Course, student: str | None = None) -> Task:
    """The submission at ``path`` (a folder, or a single ``.py`` file) as a :class:`Task`."""
    path = Path(path)
    student = student or (path.stem if path.is_file() else path.name)
    files: dict[str, bytes] = {}
    total = 0
    if path.is_file():
        candidates = [(path, path.name)]
    else:
        candidates = [(p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*"))
                      if p.is_file() and not (set(p.relative_to(path).parts[:-1]) & _SKIP_DIRS)
                      and p.suffix != ".pyc"]
    for file, relative in candidates:
        total += file.stat().st_size
        if total > MAX_SUBMISSION_BYTES:
            return Task(student, {}, course.to_json(), f"the submission is larger than "
                                                         f"{MAX_SUBMISSION_BYTES // 2**20} MiB")
        files[relative] = file.read_bytes()
    return Task(student, files, course.to_json())


def _environment(seed: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env.update(dict.fromkeys(THREADS, "1"))
    env["PYTHONHASHSEED"] = str(seed)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MPLBACKEND"] = "Agg"
    # the harness must be importable in the child exactly as here (an editable install, or a checkout)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), *_harness_roots()) if p)
    return env


def _harness_roots() -> list[str]:
    import scratchnet

    return [str(Path(scratchnet.__file__).resolve().parents[1])]


def warm_up() -> None:
    """Load, in this process, every module a grading loads before the student's code: the grade
    package's own and the checks' (:func:`.harness.warm_up`: torch, hypothesis, the op check, the
    runner) — a pool worker's initializer, so its children are forked ready."""
    import importlib
    import pkgutil

    from .. import grade
    from .harness import warm_up as warm_checks

    for module in sorted(m.name for m in pkgutil.iter_modules(grade.__path__, grade.__name__ + ".")):
        if not module.endswith(".command"):  # the CLI's argparse front, never loaded by a grading
            importlib.import_module(module)
    warm_checks()


def can_fork() -> bool:
    """Whether forking this process gives a sound child: Linux, one thread (Python's and the OS's),
    the thread-count variables at 1 (no BLAS/OpenMP pool), torch imported (else nothing is gained)."""
    if not hasattr(os, "fork") or threading.active_count() != 1 or "torch" not in sys.modules:
        return False
    if any(os.environ.get(name) != "1" for name in THREADS[:3]):
        return False
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    return any(line.split() == ["Threads:", "1"] for line in status.splitlines())


def _fork(folder: Path) -> int:
    """Fork the submission's process: it grades and always leaves through ``os._exit``."""
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        os.setsid()
        from .child import run

        code = run(folder)
    except BaseException:  # noqa: BLE001 - whatever happens, this process must not return into the pool
        code = 71
    finally:
        os._exit(code)


def _wait(pid: int, seconds: float) -> tuple[int | None, Any, bool]:
    """(wait status, rusage, timed out): wait for ``pid`` up to ``seconds``, then kill its group."""
    deadline = time.monotonic() + seconds
    delay = 0.01
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, False
        if time.monotonic() >= deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, usage = os.wait4(pid, 0)
            return status, usage, True
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def grade_task(task: Task) -> SubmissionResult:
    """Grade one packed submission in its own limited process (see the module docstring)."""
    import subprocess

    if task.problem:
        return SubmissionResult(task.student, "not_gradable", task.problem)
    course = task.course
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="scratchnet-grade-"))
    try:
        root = folder / "submission"
        for relative, content in task.files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        root.mkdir(exist_ok=True)
        graded = [r for r in task.files if Course.imports(Course.from_json(course), r)]
        (folder / "task.json").write_text(json.dumps({"student": task.student, "course": course,
                                                      "files": graded}), encoding="utf-8")
        seed = course["seed"] if course.get("seed") is not None else 0
        if can_fork() and os.environ.get("PYTHONHASHSEED") == str(seed):
            pid = _fork(folder)
        else:
            proc = subprocess.Popen([sys.executable, "-m", "scratchnet_reference.grade.child", str(folder)],
                                    cwd=folder, env=_environment(seed), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            proc.returncode = 0  # reaped below with wait4, not by Popen
            pid = proc.pid
        status, usage, timed_out = _wait(pid, float(course["seconds"]))
        returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        rss = usage.ru_maxrss / 1024.0  # KiB on Linux
        output_file = folder / "output.txt"
        output = output_file.read_text(encoding="utf-8", errors="replace")[-OUTPUT_CHARS:] \
            if output_file.exists() else ""
        result_file = folder / "result.json"
        if timed_out:
            result = SubmissionResult(task.student, "timeout", f"no result within the time limit of "
                                      f"{course['seconds']:g} s: stopped (an endless loop, or waiting for input?)")
        elif result_file.exists():
            result = SubmissionResult.from_json(json.loads(result_file.read_text(encoding="utf-8")))
        elif returncode < 0:
            name = _signal_name(-returncode)
            why = {"SIGXCPU": f"past the CPU-time limit ({course['seconds']:g} s)",
                   "SIGKILL": f"killed (out of memory? the limit is {course['memory_mb']} MiB)",
                   "SIGSEGV": "a segmentation fault"}.get(name, "")
            result = SubmissionResult(task.student, "memory" if name == "SIGKILL" else "crashed",
                                      f"the process died of {name}" + (f": {why}" if why else ""))
        else:
            memory = "MemoryError" in output or "Cannot allocate memory" in output
            result = SubmissionResult(task.student, "memory" if memory else "exited",
                                      f"the process exited with code {returncode} before grading finished "
                                      + ("(out of memory)" if memory else "(os._exit, or the interpreter died)"))
        result.student = task.student
        result.output = output
        result.seconds = seconds
        result.peak_rss_mb = rss
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)
