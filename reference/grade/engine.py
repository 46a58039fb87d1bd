"""Run the gradings on an existing engine: a local process pool by default, Dask distributed when given
a scheduler address. Nothing here schedules: the engine does; each task only starts and watches one
submission's limited child process (:func:`.isolate.grade_task`), so a hang is killable whatever
the engine. The local pool's workers import torch once and fork each child from there; a Dask
worker (threaded) starts a fresh interpreter per child.

Why Dask distributed rather than Ray: it is pure-Python wheels from PyPI (``distributed``, ``dask``,
``tornado``, ``msgpack``, …) with no multi-hundred-MB runtime to install on every machine; a test
starts a real ``LocalCluster`` in-process; ``Client.submit`` + ``as_completed`` is the whole API we
need; and a cluster is started with one command (``dask scheduler`` / ``dask worker ADDRESS``) or by
the HPC tools that already speak Dask (dask-jobqueue on Slurm/PBS).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence

from .isolate import THREADS, Task, grade_task, warm_up
from .results import SubmissionResult

__all__ = ["run_local", "run_dask", "run"]


def _lost(task: Task, exc: BaseException) -> SubmissionResult:
    return SubmissionResult(task.student, "crashed", f"the grading worker was lost ({type(exc).__name__}: {exc})")


@contextlib.contextmanager
def _worker_environment(seed: int) -> Iterator[None]:
    """The environment the pool's workers start with (spawned workers copy ``os.environ``): one
    BLAS/OpenMP thread and the hash seed, as each submission's process needs them."""
    wanted = {**dict.fromkeys(THREADS, "1"), "PYTHONHASHSEED": str(seed)}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_local(tasks: Sequence[Task], workers: int) -> Iterator[SubmissionResult]:
    """Grade ``tasks`` on a ``concurrent.futures.ProcessPoolExecutor`` of ``workers``: started by a
    fork server (no state of this process is inherited), each warmed up once (:func:`.isolate.warm_up`: torch and
    the checks imported, so each submission's process is forked from it ready); results in the
    order they finish."""
    if not tasks:
        return
    seed = tasks[0].course.get("seed") or 0
    # a fork server with our module preloaded: fresh workers (nothing of this process inherited)
    # without each one importing torch from scratch before its initializer
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["scratchnet_reference.grade.isolate"])
    with _worker_environment(seed), \
            cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=warm_up) as pool:
        futures = {pool.submit(grade_task, task): task for task in tasks}
        for future in cf.as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - a broken pool worker is that submission's crash
                yield _lost(futures[future], exc)


def run_dask(tasks: Sequence[Task], scheduler: str) -> Iterator[SubmissionResult]:
    """Grade ``tasks`` on the Dask cluster at ``scheduler`` (``tcp://host:8786``): one task per
    submission, results in the order they finish. The workers need scratchnet installed (the same
    version); the submissions travel inside the tasks, so no shared file system is needed."""
    from distributed import Client, as_completed

    with Client(scheduler, set_as_default=False) as client:
        futures = [client.submit(grade_task, task, pure=False, key=f"grade-{i}-{task.student}", retries=0)
                   for i, task in enumerate(tasks)]
        by_key = {f.key: t for f, t in zip(futures, tasks)}
        for future in as_completed(futures, loop=client.loop):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker is that submission's crash
                yield _lost(by_key[future.key], exc)
            finally:
                future.release()


def run(tasks: Sequence[Task], *, workers: int = 1, scheduler: str | None = None,
        progress: Callable[[int, SubmissionResult], None] = lambda done, result: None) -> list[SubmissionResult]:
    """Every task's result (sorted by student), ``progress(done, result)`` called as each finishes."""
    stream = run_dask(tasks, scheduler) if scheduler else run_local(tasks, workers)
    results = []
    for result in stream:
        results.append(result)
        progress(len(results), result)
    return sorted(results, key=lambda r: r.student)
