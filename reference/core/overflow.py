"""Both overflow: torch and the implementation, in the same dtype, give the same non-finite values.

A float32 network fed inputs of ±1e30 overflows: torch's float32 loss is ``inf`` and so is a
correct implementation's. The float64 oracle, which judges float32 records where torch's own
float32 arithmetic broke down, has a finite loss (1e60 fits in float64), so a correct
implementation would be marked ``fail`` for overflowing exactly where torch does. The contract is
conformance with torch *at the record's dtype*; so when torch in that dtype and the implementation
are non-finite at exactly the same elements, the record is judged against torch in that dtype — the
non-finite elements agree, the finite ones are compared as usual — and the reason is written on
the record — provided the value itself is beyond the dtype's range: the oracle that would judge the
record (float64, or torch's stable form) is non-finite or larger than the dtype's largest number
there. Two infinities must have the same sign (a sign error stays visible); an infinity
against a NaN agrees, because which of the two an overflowing sum gives depends on the order of
its terms (``inf + (−inf) = NaN``): measured on a gelu + MSE float32 network at inputs ±1e30, the
first layer's weight gradient is ``[inf, −inf, inf]`` in scratchnet (OpenBLAS) and
``[NaN, NaN, inf]`` in torch (MKL). A non-finite value on one side only is still a disagreement.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["shared_overflow", "as_agreed"]


def shared_overflow(actual: Any, torch_same_dtype: Any, dtype: str, judge: Any = None) -> str:
    """The reason (for the record's note) when ``actual`` and torch in ``dtype`` are non-finite at the
    same elements (see the module docstring) and, where ``judge`` (the oracle that would judge the
    record) is given, its value there is beyond ``dtype``'s range too — the result overflows ``dtype``
    itself, not just one way of computing it; ``""`` otherwise. (A pair whose stable form is finite in
    ``dtype`` — a naive cross-entropy's ``log 0`` — is judged by that form and still fails.)"""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(torch_same_dtype, dtype=np.float64)
    if a.shape != b.shape:
        return ""
    bad_a, bad_b = ~np.isfinite(a), ~np.isfinite(b)
    if not bad_b.any() or not np.array_equal(bad_a, bad_b):
        return ""
    if judge is not None:
        j = np.asarray(judge, dtype=np.float64)
        if j.shape != b.shape:
            return ""
        with np.errstate(invalid="ignore"):
            beyond = ~np.isfinite(j[bad_b]) | (np.abs(j[bad_b]) > float(np.finfo(dtype).max))
        if not np.all(beyond):
            return ""
    x, y = a[bad_b], b[bad_b]
    if np.any(np.isinf(x) & np.isinf(y) & (x != y)):
        return ""
    kinds = ", ".join(f"{n} {what}" for what, n in (("+inf", int(np.sum(y == np.inf))),
                                                     ("−inf", int(np.sum(y == -np.inf))),
                                                     ("NaN", int(np.sum(np.isnan(y))))) if n)
    mixed = int(np.sum(np.isnan(x) != np.isnan(y)))
    order = f"; {mixed} are inf on one side and NaN on the other (the order of an overflowing sum)" if mixed else ""
    return (f"both overflow in {dtype}: torch in {dtype} and the implementation are non-finite at the same "
            f"elements (torch: {kinds} of {b.size}{order}); judged as agreement with torch in {dtype}")


def as_agreed(actual: Any, torch_same_dtype: Any) -> np.ndarray:
    """``actual`` with torch's values at torch's non-finite elements: what is measured once
    :func:`shared_overflow` found them to agree (the finite elements are ``actual``'s own)."""
    b = np.asarray(torch_same_dtype)
    return np.where(np.isfinite(b), np.asarray(actual), b)
