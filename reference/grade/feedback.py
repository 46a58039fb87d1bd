"""Per-student feedback at the hint level the teacher chose for each check, as Markdown and as HTML.

The levels, each including the one before:

* ``symptom`` — which check fails, on how many examples, how far off (``tol_ratio``), and one
  failing example to run (the inputs, torch's answer, theirs): what happens, not why;
* ``concept`` — what is wrong, in the catalogue's words, with the evidence;
* ``formula`` — the right formula.

Both media are rendered from the same blocks; every string that comes from the submission (names,
error messages, its own output, the numbers it returned) is escaped for the medium — HTML-escaped
in the page; in Markdown, backslash-escaped in text and fenced (a fence longer than any backtick
run inside) in code blocks, so nothing a student wrote becomes markup.
"""

from __future__ import annotations

import html
import math
import re

from .course import Course
from .results import CheckResult, SubmissionResult

__all__ = ["blocks", "markdown", "html_page", "check_text", "md_escape", "fence", "score"]

Block = tuple[str, str]  # ("h1" | "h2" | "p" | "li" | "code", text)

_STATUS_WORDS = {
    "timeout": "stopped at the time limit",
    "crashed": "crashed",
    "exited": "exited before it could be graded",
    "import_error": "could not be imported",
    "memory": "ran out of memory",
    "not_gradable": "could not be graded",
}


def score(result: SubmissionResult, course: Course) -> tuple[float, float]:
    """(points earned, points possible): a check's points when it passes, nothing otherwise; a
    submission that could not be graded earns nothing of the required checks."""
    checks = [c.check for c in result.checks] or list(course.required)
    possible = sum(course.points_for(c) for c in checks)
    earned = sum(course.points_for(c.check) for c in result.checks if c.status == "pass")
    return earned, possible


def _ratio(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.3g}"


def check_text(check: CheckResult, level: str) -> list[Block]:
    """The blocks for one check at ``level`` (symptom / concept / formula)."""
    if check.status == "pass":
        return [("p", f"passes: every one of {check.examples} examples agrees with torch "
                      f"(worst tol_ratio {_ratio(check.tol_ratio)} ≤ 1).")]
    if check.status == "missing":
        return [("p", "missing: the submission has no function for this check.")]
    out: list[Block] = []
    if check.called_as and check.called_as.split("(")[0] != check.check:
        out.append(("p", f"your function, called as: {check.called_as} (the failing example below names the "
                         f"check, {check.check})"))
    if check.examples:
        out.append(("p", f"fails: {check.failed} of {check.examples} examples differ from torch's "
                         f"(worst tol_ratio {_ratio(check.tol_ratio)}; 1 is the tolerance)."))
    if check.detail:
        out.append(("p", f"error: {check.detail}"))
    for cause in check.causes:
        if level in ("concept", "formula"):
            out.append(("li", f"what is wrong: {cause.what}"))
            if cause.evidence:
                out.append(("li", f"evidence: {cause.evidence}"))
        if level == "formula" and cause.right:
            out.append(("li", f"the right formula: {cause.right}"))
    examples = [c.reproducer for c in check.causes if c.reproducer]
    if examples:
        out.append(("p", "a failing example to run:"))
        out.append(("code", examples[0]))
    return out


def blocks(result: SubmissionResult, course: Course) -> list[Block]:
    earned, possible = score(result, course)
    out: list[Block] = [("h1", f"Feedback for {result.student}"), ("p", f"score: {earned:g} / {possible:g}")]
    if result.status != "graded":
        out.append(("p", f"your submission {_STATUS_WORDS.get(result.status, result.status)}: {result.detail}"))
    elif result.detail:
        out.append(("p", f"note: {result.detail}"))
    for check in result.checks:
        out.append(("h2", f"{check.check} — {check.status}"))
        out += check_text(check, course.hint(check.check))
    if result.output.strip():
        out += [("h2", "what your code printed (the last lines)"), ("code", result.output)]
    return out


_MD_INLINE = re.compile(r"([\\`*_{}\[\]|~])")
_MD_LINE_START = re.compile(r"^(\s*)([#>+\-=]|\d+[.)])")


def md_escape(text: str) -> str:
    """Text that Markdown shows as it is: inline punctuation (emphasis, code, links, tables)
    backslash-escaped, ``<``/``&`` as entities (no HTML tag), a line never starting a heading, list
    or quote; line breaks kept as breaks."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = [_MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), _MD_INLINE.sub(r"\\\1", line))
             for line in text.splitlines() or [""]]
    return "  \n".join(lines)


def fence(text: str) -> str:
    """``text`` as a fenced Markdown code block whose fence is longer than any backtick run inside."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}text\n{text.rstrip()}\n{marks}"


def markdown(result: SubmissionResult, course: Course) -> str:
    lines: list[str] = []
    for kind, text in blocks(result, course):
        if lines and lines[-1].startswith("- ") and kind != "li":
            lines.append("")  # end the list: a paragraph right after it would join its last item
        if kind == "h1":
            lines += [f"# {md_escape(text)}", ""]
        elif kind == "h2":
            lines += [f"## {md_escape(text)}", ""]
        elif kind == "li":
            lines.append(f"- {md_escape(text)}")
        elif kind == "code":
            lines += ["", fence(text), ""]
        else:
            lines += [md_escape(text), ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;line-height:1.45}"
        "pre{background:#f6f8fa;padding:.75rem;overflow-x:auto}h2{border-bottom:1px solid #ddd}")


def html_page(result: SubmissionResult, course: Course) -> str:
    body = []
    in_list = False
    for kind, text in blocks(result, course):
        if kind == "li" and not in_list:
            body.append("<ul>")
            in_list = True
        elif kind != "li" and in_list:
            body.append("</ul>")
            in_list = False
        escaped = html.escape(text)
        body.append({"h1": f"<h1>{escaped}</h1>", "h2": f"<h2>{escaped}</h2>", "li": f"<li>{escaped}</li>",
                     "code": f"<pre><code>{escaped}</code></pre>"}.get(kind, f"<p>{escaped}</p>"))
    if in_list:
        body.append("</ul>")
    title = html.escape(f"Feedback for {result.student}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
