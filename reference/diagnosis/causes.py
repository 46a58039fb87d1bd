"""Root causes: one structured value per independent mistake, rendered for each medium and never
parsed back from its text.

A :class:`RootCause` names *where* by its fields — the activation or loss (``op``) and the step
(``part``: ``backward``, ``forward``, …) at the ``layers`` it enters, one ``parameter``, an
``area`` that is neither (``"loss gradient (every layer)"``, ``"forward pass"``), or the learner's
op itself at op level — and the user's ops a substitution singled out (``swapped``). ``where`` is
display text derived from those fields; :attr:`RootCause.key` (what makes two causes one) is built
from the fields too, so the causes of one mistake at several layers, or in several combinations,
are recognised as one.

A record carries its causes in its ``diagnosis`` field: :func:`encode` / :func:`decode` are the only
pair that writes and reads that text (JSON of the fields, plus the rendered ``where`` for a person
reading the CSV). :func:`group` counts across a run how many failing rows each cause explains;
:func:`cause_table_rows` and :func:`cause_numbers` give the CSV table and the numbers the report's
"Worst gradients" rows point at; :func:`summary_lines` is the terminal's list.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["RootCause", "encode", "decode", "group", "headline", "diagnosis_text", "summary_lines",
           "COLUMNS", "STRUCTURED_COLUMNS", "cause_table_rows", "cause_numbers", "TRAINING_CHECKS"]


@dataclass(frozen=True)
class RootCause:
    """One independent mistake.

    ``kind``: a key of the catalogue (:data:`~scratchnet_reference.diagnosis.catalogue.CATALOGUE`:
    ``softmax_s1s``, ``kink``, …) or a pattern the diagnosis reads off the numbers (``factor``,
    ``scaled_delta``, ``parameter``, ``wrong_forward``, ``large_logits``, ``unexplained``,
    ``marginal``, ``raised``, …). Where: ``op`` + ``part`` at ``layers`` (network level), or
    ``parameter`` (``layers.1.weight``), or ``area``, or ``op`` alone (op level: the learner's
    function, e.g. ``dense_backward (dW)``). ``factor``: ``k`` in ``yours = k × the model`` when one
    was fitted (``factor_name`` its name, ``N·C``); ``checks`` the op-level checks it fails in;
    ``own_loss_consistent``: whether finite differences of the learner's own loss agree with the
    learner's gradient (``None``: not a loss gradient, or not measured)."""

    kind: str
    what: str
    evidence: str = ""
    right: str = ""
    reproducer: str = ""
    op: str = ""
    part: str = ""
    layers: tuple[int, ...] = ()
    parameter: str = ""
    area: str = ""
    swapped: tuple[str, ...] = ()
    factor: float | None = None
    factor_name: str = ""
    checks: tuple[str, ...] = ()
    own_loss_consistent: bool | None = None

    @property
    def place(self) -> str:
        """Where, without the layers and the swapped ops: ``(softmax backward)``, ``layers.1.weight``."""
        if self.layers:
            return f"({self.op}{' ' + self.part if self.part else ''})"
        return self.parameter or self.area or self.op

    @property
    def where(self) -> str:
        """``layers.0, 2 (softmax backward) [your softmax_backward]``, ``layers.1.weight``, ``forward pass``."""
        text = f"layers.{', '.join(map(str, self.layers))} {self.place}" if self.layers else self.place
        if self.swapped:
            text = f"{text} [your {', '.join(self.swapped)}]".lstrip()
        return text

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two causes one: the kind, the place and the words — not the layers a mistake
        enters at, nor the op a substitution named (they differ between combinations)."""
        return self.kind, self.place, self.what

    def joined(self, other: RootCause) -> RootCause:
        """This cause (one key with ``other``) with ``other``'s layers and swapped ops added."""
        return replace(self, layers=tuple(sorted(set(self.layers) | set(other.layers))),
                       swapped=self.swapped or other.swapped)

    def to_dict(self) -> dict[str, Any]:
        """The fields, with the rendered ``where`` after ``kind`` (for a person reading the CSV)."""
        out: dict[str, Any] = {"kind": self.kind, "where": self.where}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "kind" and value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, item: Mapping[str, Any]) -> RootCause:
        """The inverse of :meth:`to_dict` (``where`` is derived, so it is not read)."""
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items() if k in known}
        return cls(**values)


#: the root-cause table's columns (``root_causes.csv``): the rendered text first, then the structure
COLUMNS = ["kind", "where", "what", "evidence", "right", "reproducer", "failing_rows", "combinations"]
STRUCTURED_COLUMNS = ["op", "part", "layers", "parameter", "area", "swapped"]


def headline(cause: RootCause) -> str:
    return f"{cause.where}: {cause.what}" if cause.where else cause.what


def encode(causes: Iterable[RootCause]) -> str:
    """The ``diagnosis`` field of a record: its root causes as JSON (readable in a CSV cell)."""
    return json.dumps([c.to_dict() for c in causes], ensure_ascii=False)


def decode(text: str) -> list[RootCause]:
    """The root causes in a ``diagnosis`` field; plain text (``follows from step 3``, older files)
    is one cause of kind ``other``."""
    if not text:
        return []
    try:
        return [RootCause.from_dict(item) for item in json.loads(text)]
    except (ValueError, TypeError, AttributeError):
        return [RootCause("other", text)]


def diagnosis_text(text: str) -> str:
    """A record's ``diagnosis`` in words (its root causes' headlines)."""
    return " | ".join(headline(c) for c in decode(text))


#: the checks of a lockstep training run (:mod:`~scratchnet_reference.core.lockstep`)
TRAINING_CHECKS = ("training_step", "final_params")


def _model(r: Any) -> tuple:
    """The model a record belongs to, whatever was checked on it (training or not)."""
    return r.hidden, r.output, r.loss, r.reduction, r.dtype, getattr(r, "device", "")


def group(records: Iterable[Any]) -> list[tuple[RootCause, int, int]]:
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
        if getattr(r, "check", "") not in TRAINING_CHECKS:
            of_model.setdefault(_model(r), []).extend(decode(r.diagnosis))
    rows: dict[tuple, list] = {}
    combos: dict[tuple, set] = {}
    consequences: dict[tuple, list[str]] = {}
    for r in records:
        combo = (r.hidden, r.output, r.loss, r.reduction, r.dtype, r.optimizer)
        for cause in decode(r.diagnosis):
            consequence = cause.kind in ("training_gradients", "training_loss_only")
            explained = of_model.get(_model(r)) if consequence else None
            for c in {c.key: c for c in explained or [cause]}.values():
                entry = rows.setdefault(c.key, [c, 0])
                entry[0], entry[1] = entry[0].joined(c), entry[1] + 1
                combos.setdefault(c.key, set()).add(combo[:-1] + ("",) if explained else combo)
                if explained and (cause.where, cause.kind) not in consequences.setdefault(c.key, []):
                    consequences[c.key].append((cause.where, cause.kind))
    out = []
    for key, (cause, n) in rows.items():
        loss_only = cause.kind in ("loss_value", "log_epsilon")  # a loss value moves no weight
        logged = ("training_gradients", "training_loss_only") if loss_only else ("training_loss_only",)
        for kinds, words in ((() if loss_only else ("training_gradients",),
                              "as a consequence, lockstep training of this model breaks"),
                             (logged, "lockstep training logs this loss too")):
            runs = ", ".join(dict.fromkeys(w.removeprefix("training: ") for w, k in consequences.get(key, [])
                                           if k in kinds))
            if runs:
                cause = replace(cause, evidence="; ".join(filter(None, [cause.evidence, f"{words} ({runs})"])))
        out.append((cause, n, len(combos[key])))
    return sorted(out, key=lambda t: (-t[1], t[0].where))


def cause_table_rows(records: Iterable[Any]) -> list[dict[str, Any]]:
    """The rows of ``root_causes.csv``: ``cause`` (its number), :data:`COLUMNS`, then
    :data:`STRUCTURED_COLUMNS` (``layers`` and ``swapped`` comma-separated)."""
    out = []
    for i, (c, n, m) in enumerate(group(records), 1):
        row: dict[str, Any] = {"cause": i, "kind": c.kind, "where": c.where, "what": c.what, "evidence": c.evidence,
                               "right": c.right, "reproducer": c.reproducer, "failing_rows": n, "combinations": m}
        row.update(op=c.op, part=c.part, layers=", ".join(map(str, c.layers)), parameter=c.parameter, area=c.area,
                   swapped=", ".join(c.swapped))
        out.append(row)
    return out


def _row_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """The :attr:`RootCause.key` of a root-cause table row, from its structured columns."""
    layers = tuple(int(float(k)) for k in str(row.get("layers") or "").replace(" ", "").split(",") if k)
    cause = RootCause(str(row["kind"]), str(row["what"]), op=str(row.get("op") or ""),
                      part=str(row.get("part") or ""), layers=layers, parameter=str(row.get("parameter") or ""),
                      area=str(row.get("area") or ""))
    return cause.key


def cause_numbers(diagnoses: Iterable[str], table: Iterable[Mapping[str, Any]]) -> list[str]:
    """For each record's ``diagnosis``, the numbers (``"1, 2"``) of its causes in ``table`` (rows of
    :func:`cause_table_rows`, e.g. read back from ``root_causes.csv``); ``""`` for none."""
    number = {_row_key(row): row["cause"] for row in table}
    return [", ".join(str(number.get(c.key, "?")) for c in decode(text)) if text else "" for text in diagnoses]


def summary_lines(records: Iterable[Any], limit: int = 8, width: int = 118) -> list[str]:
    """The numbered root causes of a run's failing records: where, what, evidence, the right
    formula, how many failing rows each explains."""
    causes = group(list(records))
    lines: list[str] = []
    for i, (cause, rows, combos) in enumerate(causes[:limit], 1):
        head = f"{i}. {cause.where}: " if cause.where else f"{i}. "
        lines += textwrap.wrap(f"{head}{cause.what}  [{rows} failing rows, {combos} combination"
                               f"{'s' if combos > 1 else ''}]", width=width, subsequent_indent="     ")
        for label, text in (("evidence", cause.evidence), ("right", cause.right)):
            if text:
                lines += textwrap.wrap(f"{label}: {text}", width=width, initial_indent="     ",
                                       subsequent_indent="       ")
    if len(causes) > limit:
        lines.append(f"… {len(causes) - limit} more root causes (see root_causes.csv)")
    return lines


def render_findings(causes: list[RootCause]) -> str:
    """Op-level root causes, numbered: the op, what, the checks it fails, evidence, the right
    formula, a reproducer."""
    blocks = []
    for i, f in enumerate(causes, 1):
        lines = [f"{i}. {f.where}: {f.what}", f"   fails in: {', '.join(dict.fromkeys(f.checks))}",
                 f"   evidence: {f.evidence}"]
        if f.right:
            lines.append(f"   right: {f.right}")
        if f.reproducer:
            lines.append("   reproducer:")
            lines += [f"     {line}" for line in f.reproducer.splitlines()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
