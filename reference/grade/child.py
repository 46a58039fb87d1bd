"""One submission graded inside its own process: ``python -m scratchnet_reference.grade.child TASKDIR``
(or :func:`run` in a process :mod:`.isolate` forked for it).

:mod:`.isolate` prepares the submission's files in ``TASKDIR/submission`` and the task in
``TASKDIR/task.json``; this writes ``TASKDIR/result.json`` (atomically) and exits 0. First it
limits itself — ``RLIMIT_AS`` (address space) and ``RLIMIT_CPU`` — then sends its stdout and stderr
(the student's prints) to ``TASKDIR/output.txt`` and closes every other inherited descriptor, fixes
the seeds (``random``, NumPy's global generator; ``PYTHONHASHSEED`` comes from the parent), imports
the submission's files and grades what it finds. A ``sys.exit`` or exception at import is this submission's ``exited`` /
``import_error``; a ``sys.exit`` inside a function is that function raising. Inside a checked op
function, a hang, ``os._exit`` or a crash is that function's failure (the op check runs the functions
in its isolation worker); anywhere else (at import, in a network adapter) it leaves no result, and the
parent names it.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import random
import resource
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["main", "build_functions", "StudentExit"]

DECLARATIONS = ("TARGETS", "WEIGHT_LAYOUT", "PARAMS", "DERIVATIVE_OF")


class StudentExit(RuntimeError):
    """A learner's function called ``sys.exit`` (or raised ``KeyboardInterrupt``) while checked."""


def _limit(memory_mb: int, seconds: float) -> None:
    as_bytes = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    cpu = int(seconds) + 5  # a backstop: the parent's wall-clock limit comes first
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))


def _guarded(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt) as exc:
            raise StudentExit(f"{label} called sys.exit({getattr(exc, 'code', '')!r})"
                              if isinstance(exc, SystemExit) else f"{label} raised KeyboardInterrupt") from None

    try:  # the learner's own signature, so the check sees which arguments (reduction=?) it takes
        call.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        pass
    call.__name__ = call.__qualname__ = label.split("(")[0].split("[")[0]  # read under the learner's name
    return call


def guarded_functions(namespace: Mapping[str, Any]) -> dict[str, Callable[..., Any]]:
    """The submission's functions (not its classes), each raising :class:`StudentExit` for a
    ``sys.exit`` — what :func:`~.harness.read_functions` reads by name."""
    return {name: _guarded(fn, name) for name, fn in namespace.items()
            if callable(fn) and not isinstance(fn, type) and name not in DECLARATIONS}


def _takes(fn: Callable[..., Any], n: int) -> bool:
    """Whether ``fn`` can be called with ``n`` positional arguments (unknown signature: assume so)."""
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _from_alias(alias: Mapping[str, Any], namespace: Mapping[str, Any], suite_args: tuple[str, ...]) \
        -> Callable[..., Any] | None:
    """The suite-signature function for one course alias, or None when the submission lacks it (or
    its function cannot take the arguments this alias would pass: a same-named function of another
    convention is left for the next alias)."""
    fn = namespace.get(alias["function"])
    forward = namespace.get(alias["cache_from"]) if alias["cache_from"] else None
    picks = [suite_args.index(a) for a in alias["args"]] if alias["args"] is not None else None
    if not callable(fn) or (alias["cache_from"] and not callable(forward)):
        return None
    forward_args = [i for i, a in enumerate(suite_args) if a not in ("a", "g")]
    if not _takes(fn, 2 if forward is not None else len(picks if picks is not None else suite_args)):
        return None
    if forward is not None and not _takes(forward, len(forward_args)):
        return None
    label = alias["function"]
    fn = _guarded(fn, label)
    if forward is not None:
        forward = _guarded(forward, alias["cache_from"])
        g_at = suite_args.index("g")

        def suite(*args: Any) -> Any:
            cache = forward(*(args[i] for i in forward_args))[1]
            return fn(args[g_at], cache)
    else:
        times = suite_args.index(alias["times"]) if alias["times"] else None
        output = alias["output"]

        def suite(*args: Any) -> Any:
            out = fn(*(args if picks is None else [args[i] for i in picks]))
            if output is not None:
                out = out[output]
            return out * args[times] if times is not None else out

    suite.__qualname__ = suite.__name__ = label
    forward_call = f"{alias['cache_from']}({', '.join(suite_args[i] for i in forward_args)})"
    suite.called_as = (f"{label}(g, cache) with cache from {forward_call}" if forward is not None else
                       ("" if not alias["times"] else f"{alias['times']} · ")
                       + f"{label}({', '.join(alias['args'] if alias['args'] is not None else suite_args)})"
                       + (f"[{alias['output']}]" if alias["output"] is not None else ""))
    suite.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(a, inspect.Parameter.POSITIONAL_OR_KEYWORD) for a in suite_args])
    return suite


def with_methods(namespace: Mapping[str, Any], classes: Mapping[str, list[Any]]) -> dict[str, Any]:
    """``namespace`` with the public methods of one instance of each course class the submission
    defines (``TwoLayerNet(4, 5, 3)``: its ``sigmoid_prime``, ``softmax``, …) where no function of
    that name exists; a constructor that raises adds nothing (its methods then count as missing)."""
    merged = dict(namespace)
    for name, args in classes.items():
        cls = namespace.get(name)
        if not isinstance(cls, type):
            continue
        try:
            instance = cls(*args)
        except Exception:  # noqa: BLE001 - reported as the methods being missing
            continue
        for attr in dir(instance):
            if not attr.startswith("_") and attr not in merged and callable(getattr(instance, attr, None)):
                merged[attr] = getattr(instance, attr)
    return merged


def build_functions(namespace: Mapping[str, Any], names: Mapping[str, list[Mapping[str, Any]]],
                    op_args: Mapping[str, tuple[str, ...]]) -> dict[str, Callable[..., Any]]:
    """{suite op name: function}: the course's aliases first (first one present wins), else the entry of
    an ``OPS`` dict the submission declares ({suite name: function}) — the explicit mappings. The
    submission's other functions (named after the op, or as learners name them: ``sigmoid_prime``,
    ``relu_backward(dout, cache)``) are read by :func:`~.harness.read_functions`, conventions probed."""
    found: dict[str, Callable[..., Any]] = {}
    ops_dict = namespace.get("OPS") if isinstance(namespace.get("OPS"), Mapping) else {}
    for op, args in op_args.items():
        for alias in names.get(op, []):
            fn = _from_alias(alias, namespace, args)
            if fn is not None:
                found[op] = fn
                break
        else:
            if callable(ops_dict.get(op)):
                found[op] = _guarded(ops_dict[op], f"OPS[{op!r}]")
                found[op].called_as = f"OPS[{op!r}]({', '.join(args)})"
    return found


def _import_files(root: Path, files: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Import each file (the submission's folder first on ``sys.path``); {name: object} of what they
    define (first file wins), and {name: file} for adapter look-up."""
    sys.path.insert(0, str(root))
    namespace: dict[str, Any] = {}
    where: dict[str, str] = {}
    for relative in files:
        path = root / relative
        module_name = ".".join(Path(relative).with_suffix("").parts)
        known = sys.modules.get(module_name)
        if known is not None and str(root.resolve()) not in str(Path(getattr(known, "__file__", "") or "/").resolve()):
            module_name = f"_submission_{module_name}"  # a student's random.py must not be the stdlib's
            known = sys.modules.get(module_name)
        if known is not None:
            module = known  # imported already by a file before it
        else:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        own = {m.__name__ for m in sys.modules.values() if getattr(m, "__file__", None)
               and str(Path(m.__file__).resolve()).startswith(str(root.resolve()))}
        for name, value in vars(module).items():
            if name.startswith("_") or name in namespace:
                continue
            defined = getattr(value, "__module__", None) in own or name in DECLARATIONS or name == "OPS"
            if defined or (isinstance(value, Mapping) and name == "OPS"):
                namespace[name] = value
                where[name] = relative
    return namespace, where


def _user_frames(exc: BaseException, root: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(root) in f.filename]
    return "; ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[-3:])


def grade(task: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """Grade the submission in ``root`` (see the module docstring); the result as JSON-able values."""
    import numpy as np

    from .course import Course
    from .harness import NotGradable, check_network, check_op_functions, op_arguments, op_names, read_functions
    from .results import CheckResult, SubmissionResult

    course = Course.from_json(task["course"])
    seed = course.seed if course.seed is not None else 0
    random.seed(seed)
    np.random.seed(seed)
    student = task["student"]
    files = sorted(task["files"])
    try:
        namespace, where = _import_files(root, files)
    except SystemExit as exc:
        return SubmissionResult(student, "exited", f"sys.exit({exc.code!r}) while importing "
                                f"({_user_frames(exc, root) or 'at import'})").to_json()
    except MemoryError:
        return SubmissionResult(student, "memory", f"MemoryError while importing (limit {course.memory_mb} MiB)"
                                ).to_json()
    except BaseException as exc:  # noqa: BLE001 - anything the student's import raises is their result
        return SubmissionResult(student, "import_error", f"{type(exc).__name__}: {exc} "
                                f"({_user_frames(exc, root) or 'at import'})").to_json()
    names = {op: [dict(a) for a in aliases] for op, aliases in task["course"]["names"].items()}
    with_instances = with_methods(namespace, task["course"].get("classes", {}))
    functions = build_functions(with_instances, names, {op: op_arguments(op) for op in op_names()})
    declarations = {k: namespace[k] for k in DECLARATIONS if k in namespace}
    read, declarations, unread = read_functions(guarded_functions(with_instances), declarations, taken=functions)
    functions.update(read)
    adapter = course.adapter or (f"{root / where['make_implementation']}:make_implementation"
                                 if callable(namespace.get("make_implementation")) else "")
    wanted = list(course.required) or list(functions) + [c.check for c in unread]
    checks: list[CheckResult] = []
    problems: list[str] = []
    random.seed(seed)
    np.random.seed(seed)
    chosen = {op: fn for op, fn in functions.items() if op in wanted}
    try:
        if chosen:
            checks += check_op_functions(chosen, declarations, max_examples=course.max_examples, seed=course.seed)
        if adapter:
            random.seed(seed)
            np.random.seed(seed)
            checks += check_network(adapter, max_cases=course.max_cases)
    except NotGradable as exc:
        problems += exc.problems
    except MemoryError:
        return SubmissionResult(student, "memory", f"MemoryError while checking (limit {course.memory_mb} MiB)"
                                ).to_json()
    for check in checks:
        if check.check in chosen:
            check.called_as = getattr(chosen[check.check], "called_as", "")
    unreadable = {c.check: c for c in unread}  # a function named as the op whose conventions cannot be read
    checks += [unreadable.get(op) or CheckResult(op, "missing", float("inf"), detail="no function for it in the "
                                                 "submission") for op in wanted if op not in functions]
    if not checks:
        found = sorted(n for n, v in namespace.items() if callable(v))[:20]
        problems.append("no op functions and no network adapter found (functions found: "
                        f"{', '.join(found) or 'none'})")
        return SubmissionResult(student, "not_gradable", "; ".join(problems)).to_json()
    return SubmissionResult(student, "graded", "; ".join(problems), checks).to_json()


def _neutral_process() -> None:
    """The same process state whether this process was forked from a pool worker or started fresh:
    no command line of the grader's (a student's ``if len(sys.argv) < 3: sys.exit(usage)`` sees
    none), no folder of the grader's on ``sys.path`` (only the interpreter's, its packages' and the
    harness's), matplotlib without a display, no bytecode written."""
    import scratchnet

    harness = str(Path(scratchnet.__file__).resolve().parents[1])
    sys.argv = ["submission"]
    sys.path[:] = [p for p in sys.path if p.startswith((sys.prefix, sys.base_prefix, harness))
                   or (p and not os.path.isabs(p))]  # an editable install's path hook stays
    sys.dont_write_bytecode = True
    os.environ["MPLBACKEND"] = "Agg"


def run(taskdir: Path) -> int:
    """Grade the task in ``taskdir`` in this process (which is the submission's own: fresh from
    :func:`main`, or forked by :mod:`.isolate`); write ``result.json``; return the exit code."""
    task = json.loads((taskdir / "task.json").read_text(encoding="utf-8"))
    _limit(task["course"]["memory_mb"], task["course"]["seconds"])
    _neutral_process()
    out = os.open(taskdir / "output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, 1 << 16)  # nothing inherited (a pool's pipes) is the student's to write to
    root = taskdir / "submission"
    os.chdir(root)
    start = time.perf_counter()
    result = grade(task, root)
    result["seconds"] = time.perf_counter() - start
    sys.stdout.flush()
    from scratchnet.atomic import atomic_write

    atomic_write(taskdir / "result.json", json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(Path((argv or sys.argv[1:])[0]))


if __name__ == "__main__":  # pragma: no cover - run by isolate.py in its own process
    sys.exit(main())
