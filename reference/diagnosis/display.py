"""A check's result as HTML for a Jupyter notebook: the root causes first (each with its evidence,
the right formula and a reproducer to copy), then the table, then the notes.

Used by ``_repr_html_`` of :class:`scratchnet_reference.byo.ops.OpsReport` (op level) and of the whole-network result
(:mod:`scratchnet_reference.conformance.network_check`), so it lives below both; their ``__str__`` is
the terminal text.
Every piece of text that comes from the learner — function names, labels, messages of their
exceptions and warnings, the numbers in a reproducer — is escaped here (:func:`html.escape`), so
nothing they wrote is markup. No script, no external style sheet: inline styles only, so the
output reads the same in JupyterLab, VS Code and a saved notebook.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Cause", "html_report"]

_BOX = "font-family: var(--jp-ui-font-family, sans-serif); line-height: 1.4; max-width: 100%;"
_PRE = ("background: rgba(127,127,127,0.08); padding: 6px 8px; border-radius: 4px; overflow-x: auto; "
        "font-size: 12px; white-space: pre; user-select: all;")
_STATUS = {"FAIL": "color: #b00020; font-weight: bold;", "pass": "color: #1b7f3b;"}


@dataclass
class Cause:
    """One root cause, in the terms both levels share: ``where`` (an op, a layer), ``what``,
    labelled ``details`` (evidence, the right formula, …) and a ``reproducer`` (Python code)."""

    where: str
    what: str
    details: Sequence[tuple[str, str]] = ()
    reproducer: str = ""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cause(i: int, cause: Cause) -> str:
    parts = [f"<li style='margin-bottom: 10px;'><b>{_e(cause.where)}</b>: {_e(cause.what)}"]
    if cause.details:
        parts.append("<ul style='margin: 2px 0;'>")
        parts += [f"<li><i>{_e(label)}</i>: {_e(text)}</li>" for label, text in cause.details if text]
        parts.append("</ul>")
    if cause.reproducer:
        parts.append(f"<details open><summary>reproducer (select, copy into a test)</summary>"
                     f"<pre style='{_PRE}'>{_e(cause.reproducer)}</pre></details>")
    parts.append("</li>")
    return "".join(parts)


def _table(columns: Sequence[str], rows: Iterable[Sequence[object]], status_column: int | None = None) -> str:
    head = "".join(f"<th style='text-align: left; padding: 2px 8px;'>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for j, value in enumerate(row):
            style = _STATUS.get(str(value), "") if j == status_column else ""
            align = "right" if isinstance(value, (int, float)) else "left"
            text = f"{value:.3g}" if isinstance(value, float) else value
            cells.append(f"<td style='text-align: {align}; padding: 2px 8px; {style}'>{_e(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<table style='border-collapse: collapse; font-size: 13px;'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def html_report(*, title: str, ok: bool, causes: Sequence[Cause], columns: Sequence[str],
                rows: Iterable[Sequence[object]], status_column: int | None = None, read_as: Sequence[str] = (),
                notes: Sequence[str] = ()) -> str:
    """The whole report: a headline (``title``, red when not ``ok``), the numbered root causes,
    how the learner's functions were read (``read_as``), the table, the notes."""
    color = "#1b7f3b" if ok else "#b00020"
    parts = [f"<div class='scratchnet-report' style='{_BOX}'>",
             f"<p style='font-weight: bold; color: {color}; margin: 4px 0;'>{_e(title)}</p>"]
    if causes:
        parts.append("<ol class='scratchnet-root-causes'>" + "".join(_cause(i, c) for i, c in enumerate(causes, 1))
                     + "</ol>")
    if read_as:
        parts.append("<details class='scratchnet-read-as' open><summary>how your functions were read</summary><ul>"
                     + "".join(f"<li>{_e(line)}</li>" for line in read_as) + "</ul></details>")
    parts.append(_table(columns, rows, status_column))
    if notes:
        parts.append("<ul style='font-size: 12px;'>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append("</div>")
    return "".join(parts)
