"""The one place grading touches the checking and diagnosis APIs (when they move, only this changes).

Three things come from elsewhere in the harness:

* :func:`read_functions` — a submission's functions read as the ops their names claim, with their own
  conventions probed, as ``scratchnet-conformance ops`` reads them (``byo.learner_names``,
  ``byo.conventions``: ``sigmoid_prime(z)``, ``softmax_derivative(s)``, ``relu_backward(dout, cache)``),
  for the ops the course's own mapping leaves unfilled;
* :func:`check_op_functions` — the op check (``byo.ops.check_ops``): each of a learner's functions
  against torch on hypothesis-drawn inputs, its root causes (``diagnosis.RootCause``) turned into
  :class:`~.results.Cause` values by their structured fields (``kind``, ``factor``, ``op``), never
  by their words;
* :func:`check_network` — the network check, reduced for grading: the adapter loaded and
  validated (``core.adapter.load_implementation``), then a few matrix cases of the conformance
  runner (``conformance.runner``), float64, mean reduction, no training; the root causes are the
  records' structured ``diagnosis`` (``diagnosis.decode``);
* :func:`catalogue` — every known mistake's key and words (the misconception table's rows): the
  diagnosis catalogue and the op diagnosis's patterns.

A registration that cannot be checked at all raises :class:`NotGradable` with every problem.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from .results import Cause, CheckResult

__all__ = ["NotGradable", "check_op_functions", "check_network", "catalogue", "op_names", "op_arguments", "warm_up",
           "read_functions", "NETWORK_CASES"]

#: the network check's cases, in order of preference: (hidden, output, loss); the first
#: ``max_cases`` the adapter implements are run (mean reduction, float64)
NETWORK_CASES = (("relu", "softmax", "cross_entropy"), ("sigmoid", "softmax", "cross_entropy"),
                 ("tanh", "softmax", "cross_entropy"), ("sigmoid", "sigmoid", "binary_cross_entropy"),
                 ("relu", "identity", "mse"), ("sigmoid", "sigmoid", "mse"))


class NotGradable(ValueError):
    """The submission's functions or adapter cannot be checked; ``problems`` lists why."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def warm_up() -> None:
    """Import torch and every module the checks use (hypothesis, the op check and its diagnosis, the
    adapter loader, the runner), so a process forked afterwards starts with them loaded."""
    import hypothesis.extra.numpy  # noqa: F401

    from ..byo import ops  # noqa: F401
    from ..conformance import runner  # noqa: F401
    from ..core import adapter  # noqa: F401
    from ..core.torch_import import torch_module
    from ..diagnosis import catalogue, network  # noqa: F401
    from ..diagnosis import ops as op_diagnosis  # noqa: F401

    torch_module()


def op_names() -> tuple[str, ...]:
    """Every op name the op check knows (``softmax``, ``softmax_backward``, ``cross_entropy_grad``, …)."""
    from ..core.reference_ops import OPS

    return tuple(OPS)


def op_arguments(name: str) -> tuple[str, ...]:
    """The arguments an op is called with (``("z", "a", "g")`` for an activation's backward)."""
    from ..core.reference_ops import OPS

    return tuple(OPS[name].args)


def catalogue() -> dict[str, str]:
    """Known mistake key → its words: the diagnosis catalogue's entries and the patterns the op
    diagnosis reads off the numbers (``factor``, ``sign``, ``overflow``, ``kink``, …)."""
    from ..diagnosis.catalogue import CATALOGUE
    from ..diagnosis.ops import PATTERNS

    words = {key: value[0] for key, value in PATTERNS.items()}
    words.update({mistake.key: mistake.words for mistake in CATALOGUE})
    return {key: " ".join(text.replace("{act}'s", "the activation's").replace("{act}", "the activation").split())
            for key, text in sorted(words.items())}


# --------------------------------------------------------------------------------------------
# Ops
# --------------------------------------------------------------------------------------------

def _finding_ops(op_field: str) -> set[str]:
    """The op names a finding's ``op`` field names: ``softmax_backward``, ``mse (reduction='sum')``,
    or a loss and its gradient merged as ``mse and mse_grad``."""
    return {part.split(" (")[0].strip() for part in op_field.split(" and ")}


def _cause(cause: Any) -> Cause:
    """A diagnosis ``RootCause`` as grading keeps it (its structured kind and factor, its words)."""
    factor = 1.0 if cause.factor is None else float(cause.factor)
    return Cause(kind=cause.kind, factor=factor, factor_name=cause.factor_name or "1", what=cause.what,
                 evidence=cause.evidence, right=cause.right, reproducer=cause.reproducer)


def _report_checks(report: Any) -> list[CheckResult]:
    by_op: dict[str, CheckResult] = {}
    for row in report.rows:
        check = by_op.setdefault(row["op"], CheckResult(row["op"], "pass", 0.0))
        check.examples += int(row["examples"])
        check.failed += int(row["failed"])
        check.tol_ratio = max(check.tol_ratio, float(row["tol_ratio"]))
        if row["failed"]:
            check.status = "fail"
    for finding in report.findings:
        for name in _finding_ops(finding.op):
            if name in by_op:
                by_op[name].causes.append(_cause(finding))
                if finding.kind == "raised":
                    by_op[name].status = "error"
                by_op[name].status = "fail" if by_op[name].status == "pass" else by_op[name].status
    return list(by_op.values())


def check_op_functions(functions: Mapping[str, Callable[..., Any]], declarations: Mapping[str, Any] | None = None,
                       *, max_examples: int = 10, seed: int | None = None) -> list[CheckResult]:
    """Check ``functions`` ({op name: function}, the names of :func:`op_names`) with the
    declarations (``TARGETS``, ``WEIGHT_LAYOUT``, ``PARAMS``) against torch; one
    :class:`CheckResult` per op. All together first (a loss and its gradient are diagnosed as a
    pair); if the registration is refused, each op on its own, a refused one an ``error`` check."""
    from ..byo.ops import OpsError, check_ops

    declarations = dict(declarations or {})
    if not functions:
        raise NotGradable(["no op functions found"])
    try:
        report = check_ops({**functions, **declarations}, max_examples=max_examples, seed=seed)
        return _report_checks(report)
    except OpsError as exc:
        if len(functions) == 1:
            name = next(iter(functions))
            return [CheckResult(name, "error", float("inf"), detail="; ".join(exc.problems))]
    checks: list[CheckResult] = []
    for name, fn in functions.items():
        checks += check_op_functions({name: fn}, declarations, max_examples=max_examples, seed=seed)
    return checks


def _op_of(name: str) -> str | None:
    from ..byo.learner_names import read_layer_name, read_name

    reading = read_name(name)
    return reading.op if reading is not None else read_layer_name(name)


def _read(ops: Any, only: str | None = None) -> tuple[dict[str, Callable[..., Any]], dict[str, Any]]:
    """({op: function with the suite's signature, ``called_as`` how yours is called}, the declarations
    the reading found: the weight layout, the target forms, parameters)."""
    found: dict[str, Callable[..., Any]] = {}
    for op, fn in {**ops.functions, **ops.layers}.items():
        if only is not None and op != only:
            continue
        source = ops.sources.get(op, op)
        code = ops.code.get(op, "").partition(" = ")[2]
        args = ", ".join(op_arguments(op)) if op in ops.functions else "…"
        wrapped = _named(fn, op)
        wrapped.called_as = code or f"{source}({args})"
        found[op] = wrapped
    declared: dict[str, Any] = {}
    if any(op.startswith("dense_") for op in found):
        declared["WEIGHT_LAYOUT"] = ops.layout
    if ops.targets:
        declared["TARGETS"] = dict(ops.targets)
    if ops.params:
        declared["PARAMS"] = dict(ops.params)
    return found, declared


def _named(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    """``fn`` under the op's own name (read again by the op check as that op, used as it is)."""
    import functools
    import inspect

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = op
    try:
        call.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        pass
    return call


def read_functions(namespace: Mapping[str, Any], declarations: Mapping[str, Any] | None = None,
                   taken: Collection[str] = ()) -> tuple[dict[str, Callable[..., Any]], dict[str, Any],
                                                         list[CheckResult]]:
    """The submission's functions (``namespace``: name → function) read as the ops their names claim,
    for the ops not in ``taken`` (filled by the course's mapping): ``(functions, declarations,
    errors)`` — {op: function with the suite's signature}, the layout/targets/parameters the reading
    found (the submission's own ``declarations`` win), and an ``error`` check per op whose function
    cannot be read (every problem in its detail). All together first (a backward's cache comes from
    its forward); where that is refused, each function with the forwards, else on its own."""
    from ..byo.ops import OpsError, load_ops

    declarations = dict(declarations or {})
    candidates = {name: fn for name, fn in namespace.items()
                  if callable(fn) and not isinstance(fn, type) and (op := _op_of(name)) is not None and op not in taken}
    if not candidates:
        return {}, {}, []
    try:
        found, declared = _read(load_ops({**candidates, **declarations}))
        return found, {**declared, **declarations}, []
    except OpsError:
        pass
    from ..byo.learner_names import read_name

    forwards = {n: fn for n, fn in candidates.items() if (r := read_name(n)) is not None and r.op == _forward(r.op)}
    found, declared, errors = {}, {}, {}
    for name, fn in candidates.items():
        op = _op_of(name)
        if op in found:
            continue
        for trial in ({**forwards, name: fn}, {name: fn}):
            try:
                ops = load_ops({**trial, **declarations})
                break
            except OpsError as exc:
                problems = exc.problems
        else:
            errors.setdefault(op, CheckResult(op, "error", float("inf"), detail="; ".join(problems)))
            continue
        one, more = _read(ops, only=op)
        found.update(one)
        declared = {**more, **declared}
    return found, {**declared, **declarations}, [e for op, e in errors.items() if op not in found]


def _forward(op: str) -> str:
    from ..core.reference_ops import OPS

    return op if op not in OPS or OPS[op].role == "forward" else ""


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------

def _network_jobs(plan: Any, max_cases: int) -> list[tuple[str, tuple]]:
    cases = {(args[0].hidden, args[0].output, args[0].loss): (kind, args) for kind, args in plan.jobs()
             if kind == "case" and args[0].reduction == "mean"}
    chosen = [cases[key] for key in NETWORK_CASES if key in cases]
    return (chosen or [cases[key] for key in sorted(cases)])[:max_cases]


def check_network(entry: str, *, max_cases: int = 2) -> list[CheckResult]:
    """The reduced network check of the adapter ``entry`` (``path/to/adapter.py:factory``): the
    first ``max_cases`` of :data:`NETWORK_CASES` it implements (float64, mean reduction, the
    runner's seeded 5-7-6-4 batch), one :class:`CheckResult` per case."""
    from ..conformance.runner import RunPlan, run_matrix
    from ..core.adapter import AdapterError, load_implementation
    from ..diagnosis import decode

    try:
        impl, caps = load_implementation(entry)
    except AdapterError as exc:
        raise NotGradable(list(exc.problems)) from None
    plan = RunPlan(dtypes=("float64",), training=False, capabilities=None if caps.is_everything else caps)
    jobs = _network_jobs(plan, max_cases)
    if not jobs:
        raise NotGradable([f"the adapter {entry} implements none of the float64 mean-reduction cases"])
    checks = []
    for job in jobs:
        case = job[1][0]
        name = f"network {case.hidden}-{case.output}-{case.loss}"
        try:
            records, _ = run_matrix(impl, plan, jobs=[job])
        except Exception as exc:  # noqa: BLE001 - the learner's network raising is this check's failure
            checks.append(CheckResult(name, "error", float("inf"), detail=f"{type(exc).__name__}: {exc}"))
            continue
        check = CheckResult(name, "pass", max((float(r.tol_ratio) for r in records), default=0.0),
                            examples=len(records), failed=sum(r.status == "fail" for r in records))
        seen = set()
        for record in records:
            if record.status != "fail":
                continue
            check.status = "fail"
            for cause in decode(record.diagnosis):
                if cause.key not in seen:
                    seen.add(cause.key)
                    check.causes.append(_cause(cause))
        checks.append(check)
    return checks
