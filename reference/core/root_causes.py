"""Root causes: what the diagnosis found, one entry per independent mistake, and the grouping of a
run's failing records into distinct root causes.

A :class:`RootCause` says where (op / layer / parameter), what is wrong in words, the evidence, the
right formula and a minimal reproducer. The diagnosis stores a problem's root causes in the
``diagnosis`` field of each failing record they explain (:func:`encode`, JSON), so a run's
tables carry them and :func:`group` can count, across the run, how many failing rows each explains.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace

__all__ = ["RootCause", "encode", "decode", "group", "headline", "name_factor", "mean_divisor",
           "ELEMENTWISE_LOSSES", "COLUMNS"]


@dataclass(frozen=True)
class RootCause:
    """One independent mistake. ``kind`` is a stable key (``factor``, ``softmax_s1s``, ``kink``,
    ``wrong_forward``, …); ``where`` a layer, op or parameter (``layers.1 (softmax)``)."""

    kind: str
    where: str
    what: str
    evidence: str = ""
    right: str = ""
    reproducer: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two causes one: the layers a mistake enters at and the op named by substitution
        differ between combinations (``layers.1 (softmax backward)`` and ``layers.0, 1 (softmax
        backward) [your softmax, softmax_backward]`` are one mistake)."""
        return self.kind, _LAYERS.sub("", self.where).split(" [your ")[0], self.what


_LAYERS = re.compile(r"^layers\.[\d, ]+ (?=\()")


def _joined(a: RootCause, b: RootCause) -> RootCause:
    """``a`` (one key with ``b``) with the layers and the op named by ``b`` added to its ``where``."""
    rest = _LAYERS.sub("", a.where).split(" [your ")[0]
    ops = next((" [your " + c.where.split(" [your ", 1)[1] for c in (a, b) if " [your " in c.where), "")
    found = [m.group(0) for m in (_LAYERS.match(a.where), _LAYERS.match(b.where)) if m]
    layers = sorted({int(k) for m in found for k in re.findall(r"\d+", m)})
    return replace(a, where=(f"layers.{', '.join(map(str, layers))} " if layers else "") + rest + ops)


COLUMNS = [f.name for f in fields(RootCause)] + ["failing_rows", "combinations"]


def headline(cause: RootCause) -> str:
    return f"{cause.where}: {cause.what}"


def encode(causes: Iterable[RootCause]) -> str:
    """The ``diagnosis`` field of a record: its root causes as JSON (readable in a CSV cell)."""
    return json.dumps([asdict(c) for c in causes], ensure_ascii=False)


def decode(text: str) -> list[RootCause]:
    """The root causes in a ``diagnosis`` field; plain text (training diagnoses, older files) is one
    cause of kind ``other``."""
    if not text:
        return []
    try:
        items = json.loads(text)
        return [RootCause(**item) for item in items]
    except (ValueError, TypeError):
        return [RootCause("other", "", text)]


#: the checks of a lockstep training run (:mod:`~scratchnet_reference.core.lockstep`)
TRAINING_CHECKS = ("training_step", "final_params")


def _model(r) -> tuple:
    """The model a record belongs to, whatever was checked on it (training or not)."""
    return r.hidden, r.output, r.loss, r.reduction, r.dtype, getattr(r, "device", "")


def _is_training(r) -> bool:
    return getattr(r, "check", "") in TRAINING_CHECKS


def group(records: Iterable) -> list[tuple[RootCause, int, int]]:
    """The distinct root causes of a run's failing records, most failing rows first:
    ``(cause, failing rows it explains, combinations it occurs in)``. Training records whose
    diagnosis only says they follow from an earlier step are not counted. A training run that
    fails because its model's gradients are wrong (kind ``training_gradients``) is a consequence
    of the root causes the same run found in that model's checks: its rows are counted under
    those causes, whose evidence names the training runs, and it is listed on its own only
    when the run found none (a wrong update rule, ``update_rule``, is always its own cause)."""
    records = [r for r in records if r.status == "fail" and r.diagnosis
               and not r.diagnosis.startswith("follows from step")]
    of_model: dict[tuple, list[RootCause]] = {}
    for r in records:
        if not _is_training(r):
            of_model.setdefault(_model(r), []).extend(decode(r.diagnosis))
    rows: dict[tuple, list] = {}
    combos: dict[tuple, set] = {}
    consequences: dict[tuple, list[str]] = {}
    for r in records:
        combo = (r.hidden, r.output, r.loss, r.reduction, r.dtype, r.optimizer)
        for cause in decode(r.diagnosis):
            explained = of_model.get(_model(r)) if cause.kind == "training_gradients" else None
            for c in {c.key: c for c in explained or [cause]}.values():
                entry = rows.setdefault(c.key, [c, 0])
                entry[0], entry[1] = _joined(entry[0], c), entry[1] + 1
                combos.setdefault(c.key, set()).add(combo[:-1] + ("",) if explained else combo)
                if explained and cause.where not in consequences.setdefault(c.key, []):
                    consequences[c.key].append(cause.where)
    out = []
    for key, (cause, n) in rows.items():
        if consequences.get(key):
            runs = ", ".join(w.removeprefix("training: ") for w in consequences[key])
            cause = replace(cause, evidence="; ".join(filter(None, [cause.evidence, f"as a consequence, lockstep "
                                                                    f"training of this model breaks ({runs})"])))
        out.append((cause, n, len(combos[key])))
    return sorted(out, key=lambda t: (-t[1], t[0].where))


def _factor_terms(n: int, c: int) -> list[tuple[int, float, tuple[int, int, int]]]:
    """Every ``N^a · C^b · 2^d`` with exponents in {−1, 0, 1}, except 1: ``(complexity, value, (a, b, d))``,
    simplest first."""
    out = []
    for a in (0, 1, -1):
        for b in (0, 1, -1):
            for d in (0, 1, -1):
                value = float(n) ** a * float(c) ** b * 2.0 ** d
                if (a, b, d) != (0, 0, 0) and abs(value - 1) > 1e-9:
                    out.append((abs(a) + abs(b) + abs(d), value, (a, b, d)))
    return sorted(out, key=lambda t: t[0])


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
