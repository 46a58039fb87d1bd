"""``check_network(make_implementation)``: the conformance run of a learner's whole network from Python
— in a notebook cell or their own test — returning a result that prints as the terminal report and
renders as HTML in Jupyter (the root causes first, the table of checks, a reproducer to copy)::

    from scratchnet_reference.conformance.network_check import check_network
    from my_adapter import make_implementation

    result = check_network(make_implementation)      # the --quick matrix by default
    result                                            # in Jupyter: the HTML report
    result.assert_ok()                                # in pytest: fails with the root causes

It runs the same jobs as ``scratchnet-conformance run --impl … --quick`` (``quick=False``: the whole
matrix; ``training=False``: gradients only) as the same :class:`.session.ConformanceRun`, and writes
nothing unless ``report_dir`` is given (then the report folder of ``run``, which needs pandas).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["check_network", "NetworkReport"]


@dataclass(repr=False)  # the repr is the report: an IPython terminal shows it
class NetworkReport:
    """The outcome of :func:`check_network`: every comparison ``records``, the distinct root causes
    of the failing ones (``causes``: ``(RootCause, failing rows, combinations)``), what the
    implementation does not implement, jobs that raised (``errors``)."""

    label: str
    records: list[Any]
    causes: list[tuple[Any, int, int]]
    not_implemented: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    written: Path | None = None

    @property
    def failing(self) -> list[Any]:
        return [r for r in self.records if r.status == "fail"]

    @property
    def ok(self) -> bool:
        """Something was compared, nothing failed, no job raised."""
        return bool(self.records) and not self.failing and not self.errors

    def worst(self) -> list[tuple[str, str, int, int, float, str]]:
        """One row per (check, dtype): comparisons, failures, the worst tol_ratio and where."""
        groups: dict[tuple[str, str], list[Any]] = {}
        for r in self.records:
            if r.status != "unverified":
                groups.setdefault((r.check, r.dtype), []).append(r)
        rows = []
        for (check, dtype), recs in sorted(groups.items()):
            worst = max(recs, key=lambda r: r.tol_ratio)
            fails = sum(r.status == "fail" for r in recs)
            rows.append((check, dtype, len(recs), fails, float(worst.tol_ratio),
                         f"{worst.param} [{worst.hidden}→{worst.output}+{worst.loss} {worst.reduction}]"))
        return rows

    def _title(self) -> str:
        if self.causes:
            n = len(self.causes)
            return f"{n} root cause{'s' if n > 1 else ''} in {self.label}: {len(self.failing)} of " \
                   f"{len(self.records)} comparisons fail"
        if self.failing or self.errors:
            return f"{self.label}: {len(self.failing)} of {len(self.records)} comparisons fail, " \
                   f"{len(self.errors)} jobs raised (no root cause found)"
        if not self.records:
            return f"{self.label}: nothing was compared (every check is not implemented)"
        return f"{self.label}: every one of {len(self.records)} comparisons agrees with torch."

    def _notes(self) -> list[str]:
        notes = [f"raised: {e}" for e in self.errors[:5]]
        if self.not_implemented:
            notes.append(f"{len(self.not_implemented)} jobs not implemented by {self.label} (not failures), e.g. "
                         f"{'; '.join(self.not_implemented[:3])}")
        if self.written:
            notes.append(f"reports written to {self.written}")
        notes.append(f"{len(self.records)} comparisons in {self.seconds:.1f} s")
        return notes

    def render(self) -> str:
        """The terminal report: the root causes (numbered), the table, the notes."""
        from ..diagnosis.causes import summary_lines

        lines = [self._title(), ""]
        if self.causes:
            lines += summary_lines(self.records) + [""]
            first = next((c.reproducer for c, _, _ in self.causes if c.reproducer), "")
            if first:
                lines += ["reproducer (the first root cause):", *(f"  {line}" for line in first.splitlines()), ""]
        rows = self.worst()
        width = max([len(r[0]) for r in rows] + [5])
        lines.append(f"{'check':<{width}}  {'dtype':<7}  {'compared':>8}  {'failed':>6}  {'worst tol_ratio':>15}  "
                     "where")
        for check, dtype, n, fails, ratio, where in rows:
            lines.append(f"{check:<{width}}  {dtype:<7}  {n:>8}  {fails:>6}  {ratio:>15.3g}  {where}")
        lines += [f"note: {n}" for n in self._notes()[:-1]] + self._notes()[-1:]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from ..diagnosis.display import Cause, html_report

        causes = [Cause(c.where or "network", c.what,
                        (("failing rows", f"{rows} in {combos} combination{'s' if combos > 1 else ''}"),
                         ("evidence", c.evidence), ("right", c.right)), c.reproducer)
                  for c, rows, combos in self.causes]
        rows = [(check, dtype, n, fails, ratio, "FAIL" if fails else "pass", where)
                for check, dtype, n, fails, ratio, where in self.worst()]
        return html_report(title=self._title(), ok=self.ok, causes=causes,
                           columns=("check", "dtype", "compared", "failed", "worst tol_ratio", "status", "where"),
                           rows=rows, status_column=5, notes=self._notes())

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with the report (for the learner's own pytest)."""
        if not self.ok:
            raise AssertionError("\n" + self.render())


def check_network(implementation: Any, *, quick: bool = True, training: bool = True,
                  dtypes: Sequence[str] | None = None, devices: Sequence[str] = ("cpu",),
                  report_dir: str | Path | None = None) -> NetworkReport:
    """Check a learner's network against torch: ``implementation`` is an implementation object,
    a class or a factory returning one (``make_implementation``), or a ``module:factory`` /
    ``path/to/adapter.py:factory`` string, validated as ``run --impl`` does (raises
    :class:`~scratchnet_reference.byo.adapter.AdapterError` with everything missing).

    ``quick``: the ``--quick`` matrix (seconds); ``training=False``: no lockstep training runs;
    ``dtypes``: e.g. ``("float64",)``. Nothing is written unless ``report_dir`` is given."""
    from ..core.adapter import AdapterError, load_implementation, validate_implementation
    from ..core.matrix import DTYPES
    from ..diagnosis.causes import group
    from .run import _quick_plan
    from .runner import RunPlan
    from .session import ConformanceRun

    if isinstance(implementation, str):
        impl, caps = load_implementation(implementation)
    else:
        if implementation is None:
            raise AdapterError("implementation", ["implementation must be an implementation, a class or a factory "
                                                  "(make_implementation), or 'module:factory'; got None"])
        impl = implementation() if isinstance(implementation, type) or \
            (callable(implementation) and not hasattr(implementation, "build")) else implementation
        caps = validate_implementation(impl)
    label = getattr(impl, "name", type(impl).__name__)
    plan = RunPlan(devices=tuple(devices), dtypes=tuple(dtypes or DTYPES), training=training,
                   capabilities=None if caps.is_everything else caps)
    keep = lambda job: True  # noqa: E731
    if quick:
        plan.case_filter, keep = _quick_plan(plan)
    jobs = [job for job in plan.jobs() if keep(job)]
    skipped = [(job, reason) for job, reason in plan.not_implemented() if keep(job)]
    run = ConformanceRun(plan, impl_name=label, impl_spec=implementation if isinstance(implementation, str) else None,
                         capabilities=caps, source="check_network", profile="quick" if quick else "full", quick=quick)
    run.execute(impl, jobs, skipped=skipped)
    written = run.write(report_dir) if report_dir is not None else None
    records = run.records
    not_implemented = [f"{what} ({reason})" for _, what, reason in run.not_implemented]
    return NetworkReport(label, records, group(records), not_implemented, list(run.errors), run.wall_s, written)
