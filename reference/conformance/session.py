"""One conformance run — collect, summarise, write — shared by the ``run`` command
(:mod:`.run`) and the pytest plugin (:mod:`.plugin`).

A :class:`ConformanceRun` holds what one run of the matrix (:class:`~.runner.RunPlan`) found: the
records of each job, the refusal messages of the undefined pairs, what the implementation does not
implement, the jobs that raised. The command executes the plan's jobs itself (:meth:`execute`); under
pytest each matrix test adds the records of its job (:meth:`add`), in whatever order and on whatever
xdist worker it ran (:meth:`merge`). Either way the records are written in the plan's job order, so
the two entry points write the same tables for the same jobs: CI gates the records its test run
wrote instead of computing the matrix a second time.

Records of tests that are not a job of the plan (the hypothesis-drawn property tests) are kept
apart (``drawn``) and written to ``drawn_records.csv``: they are not rows of the matrix the baseline
was made from, so they never reach ``matrix.csv`` or the gate.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.records import Record
from .runner import RunPlan

__all__ = ["ConformanceRun", "Job", "job_key", "job_label", "load_implementation", "DRAWN_RECORDS",
           "NOT_IMPLEMENTED"]

#: A job of :meth:`RunPlan.jobs`: ``("case", (Case, device))``, ``("training"|"fit", (optimizer,
#: gd_mode, dtype, device))`` or ``("refusal", (output, loss))``.
Job = tuple[str, tuple]
#: The report table of the records that belong to no job of the plan.
DRAWN_RECORDS = "drawn_records"
#: The report table of what was not implemented.
NOT_IMPLEMENTED = "not_implemented"

#: How :meth:`ConformanceRun.not_implemented_summary` counts each kind of thing left out.
_NOUNS = {"case": "matrix cases", "training": "training runs", "fit": "Network.fit runs",
          "test": "tests skipped as"}


def job_key(job: Job) -> tuple[str, ...]:
    """A job as plain strings (it crosses from xdist workers as JSON): ``("case", case id, device)``,
    ``("training", optimizer, gd_mode, dtype, device)``, ``("refusal", output, loss)``."""
    kind, args = job
    if kind == "case":
        case, device = args
        return kind, case.id, device
    return (kind, *map(str, args))


def job_label(job: Job) -> str:
    """A job in words, for the progress bar and error messages."""
    kind, args = job
    if kind == "case":
        return f"{args[0].id} {args[1]}"
    if kind in ("training", "fit"):
        return f"{kind} " + " ".join(args)
    return f"refusal {args[0]}+{args[1]}"


def load_implementation(spec: str | None, usage_error: Callable[[str], Exception]) -> tuple[Any, Any]:
    """``(implementation, capabilities)`` of ``module:factory`` (scratchnet when ``None``), loaded and
    validated; a malformed adapter raises ``usage_error(message)`` listing what is missing."""
    from ..core.adapter import load_implementation as load
    from ..core.capabilities import AdapterError

    try:
        return load(spec)
    except AdapterError as exc:
        raise usage_error(str(exc)) from None


def _error_records(impl_name: str, job: Job, exc: BaseException, capabilities: Any = None) -> list[Record]:
    """A job that raised becomes failing records (``tol_ratio = inf``, the exception in ``note``),
    so one crash shows up as a failed row instead of ending the run. The rows describe the model the
    job was checking: a case at the architecture ``capabilities`` declare or were found to build
    (``None``: :data:`~.runner.CASE_SIZES`), a training job on :func:`~.runner.training_spec`'s model
    for them (the layered one on :func:`~.runner.layered_training_spec`'s), as :func:`~.runner.run_job` runs them."""
    from ..core.compare import combination, flavours_for
    from ..core.lockstep import optimizer_label
    from ..core.matrix import OPTIMIZER_CONFIGS
    from ..core.records import Combination
    from .runner import CASE_SIZES, layered_training_spec, training_spec

    kind, args = job
    try:
        sizes = CASE_SIZES if capabilities is None else tuple(capabilities.architecture.case_sizes())
    except Exception:  # noqa: BLE001 - a malformed declaration is the adapter check's to report
        sizes = CASE_SIZES
    note = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
    combos: list[Combination] = []
    try:
        if kind == "case":
            case, device = args
            spec = case.spec(sizes)
            combos = [combination(spec, f, device, impl_name, case.mode) for f in flavours_for(spec)]
        else:
            opt, mode, dtype, device = args[:4]
            spec = layered_training_spec(dtype) if len(args) > 4 else training_spec(dtype, capabilities)
            combos = [combination(spec, "fused" if spec.fused else "modular", device, impl_name,
                                  optimizer=optimizer_label(OPTIMIZER_CONFIGS[opt]), gd_mode=mode)]
    except Exception:  # noqa: BLE001 - the spec itself is broken: name the row from the job
        if kind == "case":
            case, device = args
            combos = [Combination(hidden=",".join([case.hidden] * (len(sizes) - 2)), output=case.output, loss=case.loss,
                                  reduction=case.reduction, flavour="modular", dtype=case.dtype, device=device,
                                  sizes="-".join(map(str, sizes)), impl=impl_name)]
        else:
            opt, mode, dtype, device = args[:4]
            combos = [Combination(hidden="tanh,tanh", output="softmax", loss="cross_entropy", reduction="mean",
                                  flavour="fused", dtype=dtype, device=device, impl=impl_name,
                                  sizes="-".join(map(str, CASE_SIZES if len(args) > 4 else sizes)),
                                  optimizer=optimizer_label(OPTIMIZER_CONFIGS[opt]), gd_mode=mode)]
    check = {"case": "forward", "fit": "fit_step"}.get(kind, "training_step")
    inf = float("inf")
    return [Record(check=check, param="error", shape="()", **c.__dict__, max_abs_err=inf, max_rel_err=inf,
                   tol_ratio=inf, atol=math.nan, rtol=math.nan, passed=False, status="fail", worst_index="()",
                   step=-1 if check == "forward" else 0, note=note) for c in combos]


@dataclass
class ConformanceRun:
    """One run of ``plan`` on the implementation ``impl_name`` (see the module docstring).

    ``impl_spec``: the ``module:factory`` it was loaded from (``None``: scratchnet);
    ``capabilities``: what it declares (``None``: everything); ``source``: who ran it (``cli`` or
    ``pytest``), recorded in the metadata with ``profile``."""

    plan: RunPlan
    impl_name: str = "scratchnet"
    impl_spec: str | None = None
    capabilities: Any = None
    source: str = "cli"
    profile: str = ""
    #: a ``--quick`` subset of the plan
    quick: bool = False
    #: records by job key, in the order they came
    by_job: dict[tuple[str, ...], list[Record]] = field(default_factory=dict)
    #: records of tests that are no job of the plan (hypothesis-drawn)
    drawn: list[Record] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    #: ``(kind, what, reason)``: kind ``case``/``training``/``fit`` (a job left out) or ``test`` (a skip)
    not_implemented: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    #: jobs :meth:`execute` finished (all of them unless it was interrupted)
    finished: int = 0
    #: lines added to the metadata by the entry point (e.g. the user's floating-point warnings)
    notes: dict[str, str] = field(default_factory=dict)

    # -- collecting ------------------------------------------------------------------------------
    def add(self, records: Iterable[Record], job: Job | None = None) -> None:
        """The records of ``job`` (``None``: of a test that is no job of the plan)."""
        records = list(records)
        if job is None:
            self.drawn.extend(records)
        elif records:
            self.by_job.setdefault(job_key(job), []).extend(records)

    def refused(self, message: str) -> None:
        self.refusals.append(message)

    def skipped(self, kind: str, what: str, reason: str) -> None:
        """``what`` (a job label or a test) was left out as not implemented, for ``reason``."""
        self.not_implemented.append((kind, what, reason))

    def execute(self, impl: Any, jobs: Sequence[Job], wrap: Callable[[Iterable], Iterable] = lambda jobs: jobs,
                skipped: Sequence[tuple[Job, str]] = (), run_one: Callable[..., Any] | None = None,
                journal: Any = None) -> None:
        """Run ``jobs`` (from :meth:`RunPlan.jobs`) and collect what they give. A job that raises is
        recorded as failing records and named in :attr:`errors`; one raising ``NotImplementedError``
        joins ``skipped`` (the jobs the plan already left out) in :attr:`not_implemented`.
        ``run_one`` runs a job (default :func:`~.runner.run_job`; an
        :class:`~.isolated_jobs.IsolatedJobs` runs user code in a killable worker); each finished job's
        records go to ``journal`` (:class:`~scratchnet_reference.reports.journal.RecordJournal`) at once
        and :attr:`finished` counts the jobs, so an interrupted run knows what it has."""
        from .runner import run_matrix

        for job, reason in skipped:
            self.skipped(job[0], job_label(job), reason)

        def on_error(job: Job, exc: Exception) -> list[Record]:
            self.errors.append(f"{job_label(job)}: {type(exc).__name__}: {' '.join(str(exc).split())}"[:300])
            if os.environ.get("SCRATCHNET_CONFORMANCE_TRACEBACK"):
                traceback.print_exc()
                print(getattr(exc, "user_stack", ""), file=sys.stderr)  # a worker's failure: the user's stack
            return [] if job[0] == "refusal" else _error_records(self.impl_name, job, exc, self.plan.capabilities)

        start = time.perf_counter()
        try:
            for job in wrap(list(jobs)):
                left_out: list[tuple[Job, str]] = []
                records, refusals = run_matrix(impl, self.plan, jobs=[job], not_implemented=left_out,
                                               on_error=on_error, run_one=run_one)
                for _, reason in left_out:
                    self.skipped(job[0], job_label(job), reason)
                if not left_out:
                    self.add(records, job)
                    if journal is not None:
                        journal.append(job_label(job), records)
                for message in refusals:
                    self.refused(message)
                self.finished += 1
        finally:
            self.wall_s += time.perf_counter() - start

    # -- across pytest-xdist workers ---------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        """What a worker sends to the controller (JSON-able)."""
        return {"jobs": [[list(key), [r.to_dict() for r in records]] for key, records in self.by_job.items()],
                "drawn": [r.to_dict() for r in self.drawn], "refusals": self.refusals,
                "not_implemented": [list(item) for item in self.not_implemented], "errors": self.errors}

    def merge(self, payload: Mapping[str, Any]) -> None:
        """Add what a worker collected (:meth:`payload`)."""
        for key, records in payload.get("jobs", []):
            self.by_job.setdefault(tuple(key), []).extend(Record(**r) for r in records)
        self.drawn.extend(Record(**r) for r in payload.get("drawn", []))
        self.refusals.extend(payload.get("refusals", []))
        self.not_implemented.extend(tuple(item) for item in payload.get("not_implemented", []))
        self.errors.extend(payload.get("errors", []))

    # -- summarising -------------------------------------------------------------------------------
    @property
    def records(self) -> list[Record]:
        """The records of the plan's jobs, in the plan's job order (then jobs it does not list, as
        they came): the same list whichever entry point ran the jobs and in whatever order."""
        order = {job_key(job): i for i, job in enumerate(self.plan.all_jobs())}
        keys = sorted(self.by_job, key=lambda key: order.get(key, len(order)))
        return [r for key in keys for r in self.by_job[key]]

    @property
    def all_records(self) -> list[Record]:
        """:attr:`records` and then the drawn ones."""
        return [*self.records, *self.drawn]

    @property
    def jobs_run(self) -> int:
        """Jobs that gave records or a refusal message."""
        return len(self.by_job) + len(self.refusals)

    def not_implemented_summary(self, limit: int = 6) -> str:
        """``"3 matrix cases, 2 training runs not implemented by X: dtype float32 (4), …"``."""
        kinds = Counter(kind for kind, _, _ in self.not_implemented)
        reasons = Counter(part.strip() for _, _, reason in self.not_implemented for part in reason.split(", "))
        what = ", ".join(f"{n} {_NOUNS.get(kind, kind)}" for kind, n in kinds.items())
        top = ", ".join(f"{r} ({n})" for r, n in reasons.most_common(limit))
        more = f", … {len(reasons) - limit} more" if len(reasons) > limit else ""
        return f"{what} not implemented by {self.impl_name}: {top}{more}"

    def metadata(self) -> dict[str, str]:
        """The run's own lines of ``metadata.json`` (the machine's are added when written)."""
        plan = self.plan
        meta = {
            "profile": self.profile,
            "source": self.source,
            "plan": (f"devices={','.join(plan.devices)} dtypes={','.join(plan.dtypes)} "
                     f"training={'yes' if plan.training else 'no'} fd={plan.fd} quick={'yes' if self.quick else 'no'}"),
            "jobs": str(self.jobs_run),
            "refusals": f"{len(self.refusals)} undefined output/loss pairs refused",
            "errors": "; ".join(self.errors)[:1000] if self.errors else "none",
            "wall_time_s": f"{self.wall_s:.1f}",
        }
        if self.impl_spec:
            meta.update(impl=self.impl_name, impl_spec=self.impl_spec)
            if self.capabilities is not None:
                meta["capabilities"] = self.capabilities.describe()
                meta["architecture"] = self.capabilities.architecture.describe()
        elif self.impl_name != "scratchnet":
            meta["impl"] = self.impl_name
        if self.not_implemented:
            meta["not_implemented"] = self.not_implemented_summary()
        meta.update(self.notes)
        return meta

    def extra_tables(self) -> dict[str, Any]:
        """The report tables beside the run's own: what was not implemented, the drawn records."""
        import pandas as pd

        from ..reports.frames import records_frame

        extra: dict[str, Any] = {}
        if self.not_implemented:
            extra[NOT_IMPLEMENTED] = pd.DataFrame(self.not_implemented, columns=["kind", "job", "not_implemented"])
        if self.drawn:
            extra[DRAWN_RECORDS] = records_frame(self.drawn)
        return extra

    def matrix(self) -> Any:
        """The conformance matrix of :attr:`records`."""
        from ..reports.frames import conformance_matrix, records_frame

        return conformance_matrix(records_frame(self.records))

    @property
    def failed(self) -> bool:
        """A comparison failed or a job raised."""
        return bool(self.errors) or any(r.status == "fail" for r in self.records)

    # -- writing -----------------------------------------------------------------------------------
    def write(self, out: str | os.PathLike[str], render: bool = True,
              announce: Callable[[str], None] | None = None) -> Path:
        """The report folder of the run: the tables, and with ``render`` the pages and plots."""
        from ..reports.folder import write_reports, write_tables

        if render:
            write_reports(self.records, out, self.metadata(), extra_tables=self.extra_tables(),
                          **({"announce": announce} if announce else {}))
        else:
            write_tables(self.records, out, self.metadata(), extra_tables=self.extra_tables())
        return Path(out)
