"""No live content in a report: text from user code made inert for Markdown and for spreadsheets.

Implementation names, exception messages and diagnoses come from code we did not write; a report
shows them, it never runs or links them.

**Markdown** (:func:`md_text`): ``&``, ``<`` and ``>`` become entities (no raw HTML: no
``<script>``, no ``<img onerror=…>``), and the characters that make live Markdown structure are
backslash-escaped (CommonMark: any ASCII punctuation may be) — ``[``, ``]`` (no links, no remote
images), ``` ` ``` (no code span to break out of), ``|`` (no extra table cell), ``\\`` itself; line
breaks become spaces (a cell stays one cell). Emphasis characters (``*``, ``_``) are left alone: they
are not live, and escaping them would clutter every column name in the raw file. :func:`md_fence` picks a code
fence longer than any backtick run in the block it encloses.

**CSV** (:func:`neutralise_frame` / :func:`restore_frame`): a text cell that begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is a formula to a spreadsheet (``=HYPERLINK(…)``); it is
written with a ``'`` in front (the usual spreadsheet-injection rule: the cell shows as text). A text
cell that already begins with ``'`` gets one more, so the rule is reversible: the tool's own reader
removes exactly one leading ``'`` from every text cell that has one, and gets every string back.
Only *text* cells (``str`` values in object/string columns) are touched: numeric columns are
written as numbers, so ``-1.5`` stays a negative number and not text.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

__all__ = ["md_text", "md_fence", "neutralise_cell", "restore_cell", "neutralise_frame", "restore_frame",
           "FORMULA_PREFIXES", "QUOTE"]

#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: What goes in front of such a cell (and of a cell that begins with it, so that it reads back).
QUOTE = "'"

_MD_PUNCTUATION = str.maketrans({c: "\\" + c for c in "\\`[]|"})


def md_text(value: Any) -> str:
    """``value`` as inert Markdown text: HTML entities for ``& < >``, Markdown punctuation escaped,
    one line."""
    text = " ".join(str(value).split())
    return html.escape(text, quote=False).translate(_MD_PUNCTUATION)


def md_fence(block: str) -> str:
    """A backtick fence longer than any run of backticks in ``block`` (at least three)."""
    longest = run = 0
    for ch in block:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def neutralise_cell(value: Any) -> Any:
    """A text cell as it is written to CSV (see the module docstring); anything else unchanged."""
    if isinstance(value, str) and value.startswith((*FORMULA_PREFIXES, QUOTE)):
        return QUOTE + value
    return value


def restore_cell(value: Any) -> Any:
    """The inverse of :func:`neutralise_cell`: one leading ``'`` removed from a text cell."""
    if isinstance(value, str) and value.startswith(QUOTE):
        return value[1:]
    return value


def _text_columns(frame: pd.DataFrame) -> list[Any]:
    return [c for c in frame.columns
            if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])]


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell neutralised (a copy; numeric columns untouched)."""
    columns = _text_columns(frame)
    if not columns:
        return frame
    return frame.assign(**{str(c): frame[c].map(neutralise_cell) for c in columns})


def restore_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as read from a CSV written via :func:`neutralise_frame`: text cells restored."""
    columns = _text_columns(frame)
    if not columns:
        return frame
    return frame.assign(**{str(c): frame[c].map(restore_cell) for c in columns})
