"""The boundary with user code: every array handed to it is a private copy, every array it returns
is copied out, and after each call the copies it was handed are compared with the harness's own.

A user's ``forward`` or ``loss_and_grads`` that writes into its arguments (``x /= m`` to fold
the ``1/m`` into the input, ``y[:] = 0``) then changes nothing the harness or torch reads — the
verdict cannot be corrupted — and the write itself is recorded: :func:`call` returns which
arguments came back changed, and :func:`intact_record` turns that into a ``check = "inputs"``
record (``tol_ratio`` 0 when every argument came back bit-identical, ``inf`` when one did not; its
oracle ``harness_copy``: the expected values are the harness's own copies),
so a network that modifies its inputs fails by name instead of passing on corrupted expectations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Call", "call", "private", "copied_out", "intact_record", "second_call_ratio", "INPUTS_CHECK"]

#: The ``check`` of the records saying whether a user call left its inputs as it got them.
INPUTS_CHECK = "inputs"


def private(value: Any) -> Any:
    """A copy of an array (or of every array in a mapping) that shares no memory with ``value``."""
    if isinstance(value, Mapping):
        return {k: private(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.copy(order="C")
    return value


def copied_out(value: Any) -> Any:
    """What user code returned, detached from it: arrays (also inside a tuple, list or mapping)
    copied, so a later call that writes into its own buffers cannot change what was recorded."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Mapping):
        return {k: copied_out(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(copied_out(v) for v in value)
    return value


@dataclass(frozen=True)
class Call:
    """One call into user code: what it returned (copied out), and for each array argument whether
    it came back changed (``name -> largest |change|``, ``inf`` for a changed shape or NaN pattern)."""

    what: str
    result: Any
    changed: Mapping[str, float]

    def describe(self) -> str:
        """``"loss_and_grads(x, y) modified y in place (largest change 3)"`` or ``""``."""
        if not self.changed:
            return ""
        names = " and ".join(self.changed)
        worst = max(self.changed.values())
        return f"{self.what} modified {names} in place (largest change {worst:.3g})"


def _change(before: np.ndarray, after: np.ndarray) -> float:
    if before.shape != after.shape or before.dtype != after.dtype:
        return float("inf")
    if np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"):
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(after.astype(np.float64) - before.astype(np.float64))
    return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0)) or float("inf")


def call(fn: Callable[..., Any], what: str, names: Sequence[str], *arrays: np.ndarray) -> Call:
    """``fn(*copies of arrays)``; ``names`` name the arguments in :meth:`Call.describe` (``what``:
    ``"forward(x)"``). Exceptions of ``fn`` propagate."""
    handed = [private(a) for a in arrays]
    result = copied_out(fn(*handed))
    changed = {}
    for name, mine, theirs in zip(names, arrays, handed, strict=True):
        if isinstance(mine, np.ndarray):
            change = _change(mine, np.asarray(theirs))
            if change:
                changed[name] = change
    return Call(what, result, changed)


def intact_record(combo: Any, calls: Sequence[Call], meta: Mapping[str, str]) -> Any:
    """One ``check = "inputs"`` record for ``calls`` on one combination: passes when every call
    returned its arguments as it got them; fails with the calls that did not in ``note``."""
    from .records import Record

    broken = [c for c in calls if c.changed]
    worst = max((max(c.changed.values()) for c in broken), default=0.0)
    inf = float("inf")
    return Record(check=INPUTS_CHECK, param=", ".join(c.what for c in calls), shape="()", **combo.__dict__,
                  max_abs_err=worst, max_rel_err=inf if broken else 0.0, tol_ratio=inf if broken else 0.0,
                  atol=0.0, rtol=0.0, passed=not broken, status="fail" if broken else "pass", worst_index="()",
                  note="; ".join(c.describe() for c in broken), oracle="harness_copy", **meta)


def second_call_ratio(impl: Any, spec: Any, state: Mapping[str, np.ndarray], x: np.ndarray,
                      target: np.ndarray) -> float | None:
    """Whether a fresh model's gradients depend on the calls before: ``loss_and_grads`` twice on the
    same batch and weights. ``None`` when the second call gives back the first's gradients (to 1e-12
    relative), else the least-squares ``k`` of ``second ≈ k × first`` — ``2`` when the gradients are
    added to those of the last call (``+=``) instead of replacing them."""
    model = impl.build(spec, private(dict(state)))
    first = call(model.loss_and_grads, "loss_and_grads(x, y)", ("x", "y"), x, target).result[1]
    second = call(model.loss_and_grads, "loss_and_grads(x, y)", ("x", "y"), x, target).result[1]
    a = np.concatenate([np.ravel(np.asarray(first[k], dtype=np.float64)) for k in sorted(first)])
    b = np.concatenate([np.ravel(np.asarray(second.get(k, np.nan), dtype=np.float64)) for k in sorted(first)])
    if a.shape == b.shape and np.allclose(b, a, rtol=1e-12, atol=1e-300 + 1e-12 * float(np.abs(a).max(initial=0))):
        return None
    aa = float(a @ a)
    return float(a @ b) / aa if aa > 0 and a.shape == b.shape and np.all(np.isfinite(b)) else float("nan")
