"""The op-level checks' calls into a learner's functions, in a killable worker
(:mod:`..core.isolation`): a function that hangs, exits or raises anything is *that op's* named
failure, and the other ops are still checked and reported.

Granularity, for cost: an op's exploration calls the learner's function once per drawn example
(40 by default, per target form and reduction: hundreds of calls in all), so each exploration
— one ``_explore`` of :mod:`.ops` (one op × target form × reduction), or one layer op's
``explore`` — is one call in the worker, not each example: a round trip through the pipe (~0.5 ms,
plus the examples pickled back) against an exploration's tens to hundreds of milliseconds. After an
op's first failure its remaining explorations are not run (a hanging op costs one time limit, not one
per target form). The diagnosis, which calls the learner's loss again (finite differences of it),
runs in the worker too; should it fail, the ops are diagnosed without calling any learner function.

``timeout=None`` runs everything in this process (a debugger can step into the learner's code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..core.isolation import DEFAULT_TIMEOUT_S, UserCodeFailure, Worker
from ..diagnosis.causes import RootCause

__all__ = ["IsolatedCalls", "Prober", "failure_cause", "DEFAULT_TIMEOUT_S"]


def _apply(target: Any, fn: Callable[..., Any], args: tuple) -> Any:
    """In the worker: ``fn(target, *args)``."""
    return fn(target, *args)


class IsolatedCalls:
    """``call(op, fn, *args)`` runs ``fn(target, *args)`` in a worker forked with ``target`` (the
    learner's ops) and ``timeout`` seconds per call, returning its result, or ``None`` once ``op``
    has failed (the failure is kept in :attr:`failures`, by op). ``timeout=None``: in this process."""

    def __init__(self, target: Any, name: str, timeout: float | None = DEFAULT_TIMEOUT_S,
                 failures: dict[str, UserCodeFailure] | None = None):
        self.target = target
        self.worker = Worker(target, name=name, timeout=timeout) if timeout is not None else None
        #: op -> its failure (``failures`` given: ops that failed before, not called again)
        self.failures: dict[str, UserCodeFailure] = dict(failures or {})

    def call(self, op: str, fn: Callable[..., Any], *args: Any, label: str = "") -> Any:
        if op in self.failures:
            return None
        if self.worker is None:
            return fn(self.target, *args)
        try:
            return self.worker.call(_apply, fn, args, label=label or op)
        except UserCodeFailure as exc:
            self.failures[op] = exc
            return None

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()

    def __enter__(self) -> IsolatedCalls:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _probe_call(target: tuple, _: Any = None) -> Any:
    try_here, fn, args = target
    return try_here(fn, *args)


class Prober:
    """Reading a learner's function (:mod:`.conventions` probes it on small inputs) with each probe
    in a worker forked for it (the probe's function is a closure, not picklable: it is inherited by
    the fork), ``timeout`` seconds each. Set :attr:`current` to the function's name; once it has
    hung or exited, its other probes answer ``None`` at once and :attr:`failures` names it."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.current = ""
        self.failures: dict[str, UserCodeFailure] = {}

    def __call__(self, try_here: Callable[..., Any], fn: Callable[..., Any], args: tuple) -> Any:
        if self.current in self.failures:
            return None
        with Worker((try_here, fn, args), name=f"reading {self.current}", timeout=self.timeout) as worker:
            try:
                return worker.call(_probe_call, label="probe")
            except UserCodeFailure as exc:
                if exc.kind == "raised":  # an unpicklable answer: the reading is not one we can use
                    return None
                self.failures[self.current] = exc
                return None


def failure_cause(op: str, failure: UserCodeFailure) -> RootCause:
    """An op's failure as a root cause of the report: what happened (timeout, exit, raised, crash)
    and where in the learner's code, the stack as evidence."""
    stack = [line.strip() for line in failure.user_stack.strip().splitlines() if line.strip()]
    # a timeout's or crash's stack (faulthandler) lists the innermost frame first, a traceback last
    near = stack[:4] if failure.kind in ("timeout", "crash") else stack[-4:]
    evidence = " | ".join(near) if near else "(no stack)"
    what = {"timeout": "did not return within the time limit (it hangs, or is far too slow)",
            "exit": "ended the process (sys.exit / os._exit) instead of returning",
            "crash": "crashed the process"}.get(failure.kind, "raised instead of returning")
    return RootCause(kind=failure.kind, what=f"{what}: {failure}", evidence=evidence[-1500:],
                     right="return a result; never exit or loop for ever inside an op", op=op,
                     checks=(failure.kind,))


def without(ops: Any, failed: Any) -> Any:
    """``ops`` (a :class:`~..diagnosis.op_examples.UserOps`) without the functions of ``failed`` ops."""
    return replace(ops, functions={k: v for k, v in ops.functions.items() if k not in failed})
