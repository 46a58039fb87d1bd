"""Factors: ``yours = k × torch's`` — the least-squares ``k``, whether it holds to ``LOOSE`` × the
tolerance, and its name as a product of the batch size ``N``, the number of outputs ``C``, 2 and
their inverses, with the likely cause in words.

One search (:data:`EXPRESSIONS`, every ``±N^i·C^j·2^l`` with i, j, l ∈ {−1, 0, 1}, simplest first)
serves both levels: the network's gradients (:func:`name_factor`: the factor of a whole network's
gradients or loss value, read first as a different divisor than torch's reduction) and a single
op's output (:func:`match_expression`, :func:`name_expression`, :func:`expression_words`: one
expression that holds on every failing example, each with its own N and C).
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

__all__ = ["LOOSE", "least_squares", "fit_factor", "name_factor", "mean_divisor", "ELEMENTWISE_LOSSES",
           "EXPRESSIONS", "expression_value", "name_expression", "expression_words"]

#: a pattern (a factor, a known mistake) must hold to this many times the comparison's own tolerance
LOOSE = 10.0


def least_squares(actual: Any, model: Any) -> float | None:
    """The least-squares ``k`` of ``actual ≈ k·model`` over every element, ``⟨a, m⟩ / ⟨m, m⟩``;
    ``None`` when an element is not finite, the model is all zeros (no factor to fit) or ``|k|``
    is below 1e-9 (an all-zero result is not "a factor of" anything)."""
    a = np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in _parts(actual)])
    m = np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in _parts(model)])
    if a.shape != m.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(m))):
        return None
    mm = float(m @ m)
    k = float(a @ m) / mm if mm > 0 else 0.0
    return k if abs(k) > 1e-9 else None  # yours ≈ 0 × the model is no factor: nothing of the model is in it


def fit_factor(actual: Any, model: Any) -> float | None:
    """The ``k`` to test a known mistake's model with: :func:`least_squares`, or 1 when the model
    is all zeros (a mistake whose result is zero has no factor to fit: the elements decide)."""
    k = least_squares(actual, model)
    if k is None and all(np.all(np.asarray(v) == 0) for v in _parts(model)):
        return 1.0
    return k


def _parts(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


#: every ``(sign, i, j, l)`` for ``±N^i·C^j·2^l``, simplest first (a plus sign before a minus)
EXPRESSIONS: list[tuple[int, int, int, int]] = sorted(
    [(s, i, j, l) for s in (1, -1) for i, j, l in product((0, 1, -1), repeat=3)],
    key=lambda e: (abs(e[1]) + abs(e[2]) + abs(e[3]), e[0] < 0))


def expression_value(expr: tuple[int, int, int, int], N: int, C: int) -> float:
    s, i, j, l = expr
    return s * float(N) ** i * float(C) ** j * 2.0 ** l


def name_expression(expr: tuple[int, int, int, int]) -> str:
    """``(1, 1, 1, -1)`` -> ``"N·C/2"``; ``(-1, 0, 0, 0)`` -> ``"−1"``."""
    s, i, j, l = expr
    up = [n for n, e in (("N", i), ("C", j), ("2", l)) if e == 1]
    down = [n for n, e in (("N", i), ("C", j), ("2", l)) if e == -1]
    text = "·".join(up) or "1"
    if down:
        text += "/" + ("·".join(down) if len(down) == 1 else f"({'·'.join(down)})")
    return ("−" if s < 0 else "") + text


def expression_words(expr: tuple[int, int, int, int], base: Any, reduction: str, N: int, C: int) -> str:
    """Why ``yours = k × torch's``, in the right direction."""
    s, i, j, l = expr
    loss = base[1] if isinstance(base, tuple) else base
    mean = reduction == "mean" and loss in (*ELEMENTWISE_LOSSES, "cross_entropy", "nll")
    elementwise = loss in ELEMENTWISE_LOSSES or base == ("sigmoid", "binary_cross_entropy")
    parts = []
    if mean and i == 1 and j == 1 and elementwise:
        parts.append(f"you sum over all N·C elements where torch's mean divides by N·C (= {N * C} here)")
    elif mean and i == 1 and j != -1:
        parts.append(f"yours is the sum over the batch: torch's mean divides by N (= {N} here)")
    elif i == 1:
        parts.append(f"yours is N times torch's (N = {N}, the batch size)")
    elif i == -1 and j == -1:
        parts.append(f"you divide by every element, N·C (= {N * C}), where torch does not")
    elif i == -1:
        parts.append(f"you divide by the batch size N (= {N}) where torch does not")
    if mean and j == 1 and not (i == 1 and elementwise) and elementwise:
        parts.append(f"you divide by N only, where torch's mean divides by every element, N·C (C = {C})")
    elif j == 1 and not (mean and i == 1 and elementwise):
        parts.append(f"yours is C times torch's (C = {C} columns)")
    elif j == -1 and mean and not elementwise and i == 1:
        parts[-1:] = [f"you divide by C (= {C}) where torch's mean divides by N (= {N}): yours = N/C × torch's"]
    elif j == -1 and mean and not elementwise and i == 0:
        parts.append(f"you divide by every element, N·C, where torch's mean for {loss} divides by N only (C = {C})")
    elif j == -1 and i != -1:
        parts.append(f"you divide by C (= {C} columns) where torch does not")
    if l == 1:
        parts.append("an extra factor 2")
    elif l == -1:
        parts.append("half of torch's: a ½ torch does not have (e.g. ½(p − y)² in the loss), or the 2 of "
                     "d(p − y)²/dp = 2(p − y) left out")
    if s < 0:
        parts.append("and the sign is flipped")
    return "; ".join(parts)


def _factor_terms(n: int, c: int) -> list[tuple[int, float, tuple[int, int, int]]]:
    """Every ``N^a · C^b · 2^d`` with exponents in {−1, 0, 1}, except 1: ``(complexity, value, (a, b, d))``,
    simplest first."""
    out = []
    for s, a, b, d in EXPRESSIONS:
        value = expression_value((s, a, b, d), n, c)
        if s > 0 and (a, b, d) != (0, 0, 0) and abs(value - 1) > 1e-9:
            out.append((abs(a) + abs(b) + abs(d), value, (a, b, d)))
    return out


#: Losses whose 'mean' divides by every element (N·C); the others (cross-entropy, NLL) by the batch size N.
ELEMENTWISE_LOSSES = ("mse", "l1", "huber", "smooth_l1", "binary_cross_entropy")


def mean_divisor(loss: str) -> str:
    """What torch's ``reduction='mean'`` divides the summed ``loss`` by, in words."""
    return "N·C (every element)" if loss in ELEMENTWISE_LOSSES else "N (the batch size)"


#: How a factor's causes name what carries it: the gradient (``of="gradient"``) or the loss value.
_SUBJECTS = {"gradient": {"it": "your gradient", "its": "your loss's gradient", "sum": "that of a sum"},
             "loss": {"it": "your loss", "its": "your loss", "sum": "a sum"}}


def _why(a: int, b: int, d: int, loss: str, reduction: str, of: str, value_agrees: bool) -> str:
    """The likely cause of ``yours = N^a · C^b · 2^d × torch's`` (``of`` the gradient or the loss)."""
    w = _SUBJECTS[of]
    elementwise_mean = reduction == "mean" and loss in ELEMENTWISE_LOSSES
    why = []
    if a == 1 and b == 1 and elementwise_mean:
        why.append(f"{w['its']} is {w['sum']} over every element, where torch's mean for {loss} divides by N·C")
    elif a == 1:
        why.append(f"{w['its']} sums over the batch where torch's reduction='mean' divides by N"
                   if reduction == "mean" else f"{w['it']} is multiplied by the batch size N")
    elif a == -1:
        why.append(f"{w['it']} divides by N " + ("although the reduction is 'sum'" if reduction == "sum"
                                                 else "once more than torch's mean"))
    if b == 1 and not (a == 1 and elementwise_mean):
        why.append(f"torch's mean for {loss} divides by every element, N·C, and yours does not divide by C"
                   if elementwise_mean else f"{w['it']} sums over the C outputs")
    elif b == -1:
        why.append(f"{w['it']} divides by C where torch's {loss} ({reduction}) does not")
    why += _two(d, loss, of, value_agrees)
    return "; ".join(why)


def _two(d: int, loss: str, of: str, value_agrees: bool) -> list[str]:
    """The words for a factor ``2^d`` (a ½ or a 2 too many); ``value_agrees``: the loss value is
    torch's, so a missing 2 is the gradient's own."""
    w = _SUBJECTS[of]
    if d == -1 and loss == "mse" and value_agrees:
        return ["your gradient lacks the 2 of ∂(a − y)²/∂a = 2(a − y)"]
    if d == -1 and loss == "mse":
        return ["a ½ in your loss (½(a − y)²): torch's MSE has none" +
                (", so its gradient carries a 2 yours lacks" if of == "gradient" else "")]
    if d == -1:
        return [f"{w['it']} is half of torch's (a ½ too many)"]
    if d == 1:
        return [f"{w['it']} has a factor 2 torch's does not"]
    return []


def _formula(a: int, b: int, d: int) -> str:
    return " · ".join(p for p in ({1: "N", -1: "1/N"}.get(a, ""), {1: "C", -1: "1/C"}.get(b, ""),
                                  {1: "2", -1: "1/2"}.get(d, "")) if p)


def _divisor_model(k: float, n: int, c: int, loss: str, reduction: str, of: str,
                   value_agrees: bool) -> tuple[str, str]:
    """``k`` as torch's divisor over yours times 2^d: yours divides by 1, N, C or N·C where torch's
    divides by N (cross-entropy, NLL: mean), N·C (elementwise losses: mean) or 1 (sum); d ∈ {0, ½, 2},
    a ½ first for MSE (the ½(a − y)² convention)."""
    w = _SUBJECTS[of]
    elementwise = loss in ELEMENTWISE_LOSSES
    torch_div = (0, 0) if reduction == "sum" else ((1, 1) if elementwise else (1, 0))
    names = {(0, 0): "1", (1, 0): "N", (0, 1): "C", (1, 1): "N·C"}
    for d in (0, -1, 1) if loss == "mse" else (0, 1, -1):
        for yours in ((0, 0), (1, 0), (0, 1), (1, 1)):
            a, b = torch_div[0] - yours[0], torch_div[1] - yours[1]
            value = float(n) ** a * float(c) ** b * 2.0 ** d
            if (a, b, d) == (0, 0, 0) or abs(k / value - 1) > 1e-3 or abs(value - 1) < 1e-9:
                continue
            why = []
            if yours != torch_div and yours == (0, 0):
                why.append(f"{w['its']} is {w['sum']}, where torch's reduction='mean' for {loss} divides "
                           f"by {names[torch_div]}")
            elif yours != torch_div and torch_div == (0, 0):
                why.append(f"{w['it']} divides by {names[yours]} although the reduction is 'sum'")
            elif yours != torch_div:
                why.append(f"{w['its']} divides by {names[yours]} where torch's reduction='mean' for {loss} "
                           f"divides by {names[torch_div]}")
            why += _two(d, loss, of, value_agrees)
            return _formula(a if n != 1 else 0, b if c != 1 else 0, d), "; ".join(why)
    return "", ""


def name_factor(k: float, n: int, c: int, loss: str, reduction: str, of: str = "gradient",
                value_agrees: bool = False) -> tuple[str, str]:
    """``(formula, likely cause)`` of ``yours = k × torch's`` for the gradient (``of="gradient"``) or
    the loss value (``of="loss"``), or ``("", "")``; ``value_agrees``: the user's loss value is
    torch's (a gradient factor is then the gradient code's own). First as a different divisor than
    torch's reduction (and a ½ or 2), the common mistakes; else any product of the batch size
    ``N``, the number of outputs ``C``, 2 and their inverses, simplest first (equally simple ties
    named together). A factor equal to 1 (N = 1, C = 1) is never named."""
    formula, why = _divisor_model(k, n, c, loss, reduction, of, value_agrees)
    if not formula:
        hits = [(cx, e) for cx, v, e in _factor_terms(n, c) if abs(k / v - 1) < 1e-3]
        if not hits:
            return "", ""
        best = [e for cx, e in hits if cx == hits[0][0]]
        formula, why = " or ".join(_formula(*e) for e in best), _why(*best[0], loss, reduction, of, value_agrees)
    return f"{formula} (N = {n} the batch size, C = {c} the outputs)", why
