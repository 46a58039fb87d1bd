"""The jobs of a run on a user's implementation, each in a killable worker (:mod:`..core.isolation`).

A whole job — the user's network built, run and compared with torch, and diagnosed when it fails —
runs as one call in the worker, which was forked with the user's implementation and the plan in it:

* a job that hangs past the time limit, calls ``sys.exit``/``os._exit``, raises anything
  (``BaseException`` included) or crashes the interpreter comes back as a
  :class:`~..core.isolation.UserCodeFailure` naming the job and where in the user's code it was; the
  run records it as that job's failure and goes on with a fresh worker when it needed one;
* ``NotImplementedError`` keeps its meaning (the job is *not implemented*, not failed);
* the parent never runs the user's code after loading it, so it stays responsive (Ctrl-C, the
  progress bar) and never touches CUDA: the worker, forked before any CUDA use, initialises it itself.

Refusal jobs run no user code and stay in the parent. One call per job: the pipe's round trip
(~0.5 ms) is nothing beside a job (tens of milliseconds and up).
"""

from __future__ import annotations

from typing import Any

from ..core.isolation import DEFAULT_TIMEOUT_S, Worker
from .runner import run_job

__all__ = ["IsolatedJobs"]


def _job_in_worker(target: tuple[Any, Any], job: tuple[str, tuple]) -> tuple[str, Any]:
    impl, plan = target
    try:
        return "done", run_job(impl, plan, job)
    except NotImplementedError as exc:
        return "not_implemented", str(exc)


class IsolatedJobs:
    """``run_one(impl, plan, job)`` for :func:`~.runner.run_matrix`, running each job of ``impl`` in a
    worker with ``timeout`` seconds per job. Close it (or use ``with``) to stop the worker."""

    def __init__(self, impl: Any, plan: Any, timeout: float = DEFAULT_TIMEOUT_S,
                 label: Any = lambda job: f"{job[0]} {job[1]}"):
        self.worker = Worker((impl, plan), name=f"implementation {getattr(impl, 'name', 'impl')!r}", timeout=timeout)
        self.label = label

    def run_one(self, impl: Any, plan: Any, job: tuple[str, tuple]) -> tuple[list, str | None]:
        if job[0] == "refusal":
            return run_job(impl, plan, job)
        status, value = self.worker.call(_job_in_worker, job, label=f"job {self.label(job)}")
        if status == "not_implemented":
            raise NotImplementedError(value)
        return value

    def close(self) -> None:
        self.worker.close()

    def __enter__(self) -> IsolatedJobs:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
