"""What grading one submission produces, as plain values that cross process boundaries as JSON.

A :class:`SubmissionResult` is one student's outcome: a ``status`` for the submission as a whole
(``graded``; or ``timeout``, ``crashed``, ``exited``, ``import_error``, ``memory``,
``not_gradable`` — the student's own failure, never the batch's) and, when graded, one
:class:`CheckResult` per check (an op such as ``softmax_backward``, or one case of the network
check). A check carries its root causes as :class:`Cause` values: ``kind`` is a key of the
diagnosis catalogue (``softmax_s1s``, ``factor``, …) taken from the structured finding, never
parsed from its words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Cause", "CheckResult", "SubmissionResult", "STATUSES", "CHECK_STATUSES"]

#: the submission as a whole: graded, or the student's own failure
STATUSES = ("graded", "timeout", "crashed", "exited", "import_error", "memory", "not_gradable")
#: one check: pass, fail (a wrong result), error (the function raised / returned the wrong shape),
#: missing (the course requires it and the submission has no such function)
CHECK_STATUSES = ("pass", "fail", "error", "missing")


@dataclass(frozen=True)
class Cause:
    """One root cause in one check: the catalogue ``kind``, the ``factor`` (``k`` in ``yours = k ×
    model``, 1 for none) and its name, and the words at each hint level."""

    kind: str
    factor: float = 1.0
    factor_name: str = "1"
    what: str = ""
    evidence: str = ""
    right: str = ""
    reproducer: str = ""


@dataclass
class CheckResult:
    """One check of one submission: ``passed`` ⇔ every example's ``tol_ratio ≤ 1``."""

    check: str
    status: str
    tol_ratio: float
    examples: int = 0
    failed: int = 0
    detail: str = ""
    causes: list[Cause] = field(default_factory=list)
    #: how the submission's function was called for this op (``g · sigmoid_prime(z)``)
    called_as: str = ""

    @property
    def kinds(self) -> list[str]:
        return sorted({c.kind for c in self.causes})


@dataclass
class SubmissionResult:
    """One student's outcome (see the module docstring); ``seconds`` and ``peak_rss_mb`` are the
    child's wall time and peak resident memory (measurements, kept out of grades.csv)."""

    student: str
    status: str
    detail: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubmissionResult:
        checks = [CheckResult(**{**c, "causes": [Cause(**k) for k in c.get("causes", [])]})
                  for c in data.get("checks", [])]
        return cls(**{**data, "checks": checks})
