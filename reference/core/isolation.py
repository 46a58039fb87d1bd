"""Running user code so that it cannot take the run with it: a killable worker process per
implementation, a time limit per call, every way out turned into a named failure with the user's stack.

A learner's network is code we did not write. It may loop for ever, call ``sys.exit`` or
``os._exit`` deep inside, raise a ``BaseException`` subclass, or crash the interpreter. A thread
cannot be stopped; a process can be killed. So the calls run in a :class:`Worker`: one persistent
process per implementation (forked on the first call, so it inherits the implementation object as
it is — nothing needs to be picklable but the arguments and the results), reused call after call —
a process per call would cost a fork (or a spawn and imports) each time, a round trip through a
pipe costs a fraction of a millisecond — and killed and replaced after a call that hangs or ends it.

``worker.call(fn, *args)`` runs ``fn(target, *args)`` in the worker and returns its result, or
raises a :class:`UserCodeFailure` naming what happened:

* :class:`UserCodeTimeout` — the call ran past its time limit; the worker's Python stack at that
  moment (``faulthandler`` on ``SIGUSR1``, which works even inside a C loop holding the GIL) is
  attached, then the worker is killed;
* :class:`UserCodeExit` — ``sys.exit(code)`` (a ``SystemExit``) or ``os._exit(code)``, with the stack
  of the exiting call (``os._exit`` is wrapped in the worker so the stack is sent first);
* :class:`UserCodeRaised` — any other exception, ``BaseException`` subclasses and a
  ``KeyboardInterrupt`` raised by the code itself included, with its formatted traceback;
* :class:`UserCodeCrash` — the worker died otherwise (a signal: segfault, out of memory), with
  the ``faulthandler`` dump of where.

**The time limit** (:data:`DEFAULT_TIMEOUT_S`, 120 s per call, configurable per worker and per call;
``run --timeout``) is far above what a slow but correct network needs. ``run`` makes one call per
job (a matrix case, a training run: the user's network on the 5-7-6-4 matrix network, 8–13 samples,
at most a few dozen steps, plus torch's side and, for a failing one, the diagnosis). Measured on these
machines (2 shared cores under the load of other work, ``nice``): the slowest job of two example
adapters took 7.4 s (``textbook_net_buggy``, 101 jobs, 20 s in all) and 9.1 s
(``column_vector_sgd``, a per-sample column-vector network, 32 jobs, 9.9 s in all) — both the first
job, which pays torch's first-call warm-up; every other job took under 0.6 s. For scale: one training
step of a 784-256-128-10 float64 network on a batch of 128 takes 68 ms through scratchnet's
vectorised step, 97 ms as a per-sample NumPy loop and ~13 s as pure-Python lists (one sample's
forward pass 34 ms, ×3 for the backward, ×128) — the matrix's network is ~10⁴ times less arithmetic.

Ctrl-C: the worker ignores ``SIGINT`` (the terminal sends it to the whole process group), so the
parent alone decides — its ``KeyboardInterrupt`` propagates and :meth:`Worker.close` kills the
worker.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["Worker", "UserCodeFailure", "UserCodeTimeout", "UserCodeExit", "UserCodeRaised", "UserCodeCrash",
           "DEFAULT_TIMEOUT_S"]

#: Seconds one call may take (see the module docstring for why a correct network never reaches it).
DEFAULT_TIMEOUT_S = 120.0
#: Seconds given to the worker to dump its stack after SIGUSR1, and to exit after SIGTERM.
_GRACE_S = 1.0


class UserCodeFailure(Exception):
    """User code did not return normally. ``kind``: timeout, exit, raised or crash; ``user_stack``:
    where it was (the formatted Python stack, possibly empty for a crash); ``call``: what was called."""

    kind = "failure"

    def __init__(self, message: str, user_stack: str = "", call: str = ""):
        super().__init__(message)
        self.user_stack = user_stack
        self.call = call

    def __str__(self) -> str:
        return super().__str__()

    def report(self) -> str:
        """The message followed by the user's stack."""
        return f"{self}\n{self.user_stack}".rstrip()


class UserCodeTimeout(UserCodeFailure):
    kind = "timeout"


class UserCodeExit(UserCodeFailure):
    kind = "exit"

    def __init__(self, message: str, code: Any, user_stack: str = "", call: str = ""):
        super().__init__(message, user_stack, call)
        self.code = code


class UserCodeRaised(UserCodeFailure):
    kind = "raised"

    def __init__(self, message: str, exc_type: str, user_stack: str = "", call: str = ""):
        super().__init__(message, user_stack, call)
        self.exc_type = exc_type


class UserCodeCrash(UserCodeFailure):
    kind = "crash"


def _innermost_frame(stack: str, most_recent_first: bool) -> str:
    """``file:line in function`` of the innermost frame of a formatted stack (``""`` if none)."""
    frames = [line.strip() for line in stack.splitlines() if line.strip().startswith("File ")]
    if not frames:
        return ""
    line = frames[0] if most_recent_first else frames[-1]
    try:  # 'File "x.py", line 12, in f' (traceback) or 'File "x.py", line 12 in f' (faulthandler)
        path, rest = line[len('File "'):].split('", line ', 1)
        number, function = rest.replace(",", "").split(" in ", 1)
        return f"{os.path.basename(path)}:{number} in {function}"
    except ValueError:
        return line


def _at(stack: str, most_recent_first: bool = False) -> str:
    where = _innermost_frame(stack, most_recent_first)
    return f" (at {where})" if where else ""


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _die_with_parent() -> None:
    """Linux: the worker gets SIGKILL when the parent dies (even by SIGKILL), so a hanging user call
    never outlives the run as an orphan. Elsewhere the closed pipe ends an idle worker."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _serve(conn: Any, target: Any, stack_file: str) -> None:
    """The worker's loop: receive ``(fn, args)``, reply ``("ok", result)`` or a failure tuple."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    dump = open(stack_file, "w")  # noqa: SIM115 - kept open for faulthandler for the worker's life
    faulthandler.enable(file=dump, all_threads=False)
    faulthandler.register(signal.SIGUSR1, file=dump, all_threads=False)
    real_exit = os._exit

    def exit_with_stack(code: int) -> None:
        with contextlib.suppress(Exception):
            conn.send(("exit", code, "os._exit", "".join(traceback.format_stack()[:-1])))
        real_exit(code)

    os._exit = exit_with_stack
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            real_exit(0)
        try:
            reply = ("ok", fn(target, *args))
        except SystemExit as exc:
            reply = ("exit", exc.code, "sys.exit", traceback.format_exc())
        except BaseException as exc:  # noqa: BLE001 - any way out of user code is a named failure
            reply = ("raised", type(exc).__name__, " ".join(str(exc).split())[:500], traceback.format_exc())
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result
            conn.send(("raised", type(exc).__name__, f"the result could not be sent back: {exc}"[:500],
                       traceback.format_exc()))


class Worker:
    """One persistent worker process running calls on ``target`` (see the module docstring).

    ``name`` goes into every failure message (``"implementation 'mine'"``). Use as a context
    manager, or call :meth:`close`."""

    def __init__(self, target: Any, name: str = "user code", timeout: float = DEFAULT_TIMEOUT_S):
        if not (isinstance(timeout, int | float) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.target = target
        self.name = name
        self.timeout = float(timeout)
        self._process: Any = None
        self._conn: Any = None
        self._stack_file = ""
        self.restarts = 0

    # -- lifecycle ------------------------------------------------------------------------
    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe(duplex=True)
        fd, self._stack_file = tempfile.mkstemp(prefix="scratchnet-worker-", suffix=".stack")
        os.close(fd)
        self._process = ctx.Process(target=_serve, args=(child, self.target, self._stack_file), daemon=True,
                                    name=f"scratchnet-worker {self.name}")
        self._process.start()
        child.close()
        self._conn = parent

    def _stack_dump(self) -> str:
        try:
            with open(self._stack_file, encoding="utf-8", errors="replace") as fh:
                return fh.read()[-20000:]
        except OSError:
            return ""

    def _kill(self) -> None:
        if self._process is None:
            return
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=10)
        with contextlib.suppress(OSError):
            self._conn.close()
        with contextlib.suppress(OSError):
            os.unlink(self._stack_file)
        self._process = self._conn = None

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        if self._process is not None and self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.close()  # the worker's recv sees EOF and exits
            self._process.join(timeout=_GRACE_S)
        self._kill()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- calls ----------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, label: str = "") -> Any:
        """``fn(target, *args)`` in the worker (``fn`` and ``args`` picklable: a module-level
        function and plain data); its result, or a :class:`UserCodeFailure` naming ``label`` (default
        ``fn``'s name)."""
        limit = self.timeout if timeout is None else float(timeout)
        what = f"{self.name}: {label or _name(fn)}"
        if self._process is None:
            self._start()
        try:
            self._conn.send((fn, args))
        except (BrokenPipeError, EOFError, OSError):
            self._replace()
            self._conn.send((fn, args))
        deadline = time.monotonic() + limit
        try:
            while not self._conn.poll(max(0.0, min(0.5, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    return self._timed_out(what, limit)
                if not self._process.is_alive() and not self._conn.poll(0):
                    return self._died(what)
            reply = self._conn.recv()
        except (EOFError, OSError):
            return self._died(what)
        except BaseException:  # Ctrl-C in the parent: the worker is in an unknown state
            self._kill()
            raise
        status = reply[0]
        if status == "ok":
            return reply[1]
        if status == "exit":
            _, code, how, stack = reply
            if how == "os._exit":
                self._kill()
                self.restarts += 1
            raise UserCodeExit(f"{what} called {how}({code!r}){_at(stack)}: user code ended its process", code, stack,
                               what)
        _, exc_type, message, stack = reply
        raise UserCodeRaised(f"{what} raised {exc_type}: {message}{_at(stack)}", exc_type, stack, what)

    def _replace(self) -> None:
        self._kill()
        self.restarts += 1
        self._start()

    def _timed_out(self, what: str, limit: float) -> Any:
        stack = ""
        if self._process is not None and self._process.is_alive():
            with contextlib.suppress(OSError):
                os.kill(self._process.pid, signal.SIGUSR1)
            end = time.monotonic() + _GRACE_S
            while time.monotonic() < end and not (stack := self._stack_dump()):
                time.sleep(0.02)
            time.sleep(0.05)
            stack = self._stack_dump()
        self._kill()
        self.restarts += 1
        raise UserCodeTimeout(f"{what} did not return within {limit:g} s (the per-call time limit): stopped"
                              f"{_at(stack, most_recent_first=True)}", stack, what)

    def _died(self, what: str) -> Any:
        process = self._process
        if process is not None:
            process.join(timeout=_GRACE_S)
        code = process.exitcode if process is not None else None
        stack = self._stack_dump()
        self._kill()
        self.restarts += 1
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            raise UserCodeCrash(f"{what} crashed its process ({name}){_at(stack, most_recent_first=True)}", stack, what)
        raise UserCodeExit(f"{what} ended its process (exit status {code})", code, stack, what)
