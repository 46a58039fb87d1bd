"""The files a grading writes, each atomically (``scratchnet.atomic``)::

    OUT/grades.csv                 student × check: status, score, max_score, tol_ratio, root-cause kinds, factor
    OUT/misconceptions.csv|.md     how many students have each catalogued mistake (every catalogue key a row)
    OUT/misconceptions.png         the same as a bar plot (the mistakes someone has)
    OUT/feedback/STUDENT.md|.html  per-student feedback at the teacher's hint levels (:mod:`.feedback`)
    OUT/gradescope/STUDENT/results.json   Gradescope's autograder results format
    OUT/timings.csv                each submission's wall time and peak memory (measurements: they
                                   change between runs, so they are kept out of grades.csv)

``grades.csv`` depends only on what the submissions compute: two gradings of the same class give
the same bytes. Gradescope's ``results.json`` (autograder specification): top-level ``score``,
``output``, ``visibility``, ``stdout_visibility``, and ``tests`` with ``name``, ``score``,
``max_score``, ``status``, ``output``, ``output_format``, ``visibility`` (``execution_time`` is
left out so the file, too, is the same every run).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from scratchnet.atomic import atomic_write

from .course import Course
from .feedback import check_text, fence, html_page, markdown, md_escape, score
from .harness import catalogue
from .results import SubmissionResult

__all__ = ["write_outputs", "grade_rows", "misconception_rows", "safe_name", "GRADE_COLUMNS"]

GRADE_COLUMNS = ("student", "check", "status", "score", "max_score", "tol_ratio", "root_cause_kinds", "factor",
                 "detail")


def safe_name(student: str) -> str:
    """A file name for ``student``: letters, digits, ``.``, ``_``, ``-`` only."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
    return name[:100]


def _ratio(x: float) -> str:
    return "inf" if math.isinf(x) else ("nan" if math.isnan(x) else f"{x:.6g}")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def grade_rows(results: Sequence[SubmissionResult], course: Course) -> list[dict[str, str]]:
    """One row per student × check; a submission that could not be graded is one ``submission`` row
    with its status (timeout, crashed, exited, import_error, memory, not_gradable)."""
    rows = []
    for result in sorted(results, key=lambda r: r.student):
        if result.status != "graded":
            _, possible = score(result, course)
            rows.append(dict(student=result.student, check="submission", status=result.status, score="0",
                             max_score=f"{possible:g}", tol_ratio="", root_cause_kinds="", factor="",
                             detail=_one_line(result.detail)))
            continue
        for check in result.checks:
            points = course.points_for(check.check)
            factors = sorted({c.factor_name for c in check.causes if c.factor_name not in ("", "1")})
            rows.append(dict(student=result.student, check=check.check, status=check.status,
                             score=f"{points if check.status == 'pass' else 0:g}", max_score=f"{points:g}",
                             tol_ratio="" if check.status == "missing" else _ratio(check.tol_ratio),
                             root_cause_kinds=";".join(check.kinds),
                             factor=";".join(factors), detail=_one_line(check.detail)))
    return rows


def misconception_rows(results: Sequence[SubmissionResult]) -> list[dict[str, str]]:
    """Every catalogued mistake (and any other kind found) with how many students have it and who,
    most frequent first; a student counts once per mistake however many checks show it."""
    words = catalogue()
    graded = [r for r in results if r.status == "graded"]
    who: dict[str, list[str]] = {key: [] for key in words}
    for result in graded:
        for kind in sorted({k for c in result.checks for k in c.kinds}):
            who.setdefault(kind, []).append(result.student)
    rows = [dict(kind=kind, students=str(len(names)), share=f"{len(names) / len(graded):.2f}" if graded else "0.00",
                 who=" ".join(sorted(names)), words=words.get(kind, "(not in the catalogue)"))
            for kind, names in who.items()]
    return sorted(rows, key=lambda r: (-int(r["students"]), r["kind"]))


def _csv(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _misconceptions_md(rows: Sequence[dict[str, str]], results: Sequence[SubmissionResult]) -> str:
    graded = sum(r.status == "graded" for r in results)
    lines = [f"# Misconceptions: {graded} graded submissions of {len(results)}", "",
             "| mistake (catalogue key) | students | share | who |", "|---|---:|---:|---|"]
    for row in rows:
        if row["students"] != "0":
            lines.append(f"| {md_escape(row['kind'])} | {row['students']} | {row['share']} | {md_escape(row['who'])} |")
    others = [r["kind"] for r in rows if r["students"] == "0"]
    lines += ["", f"No student has: {md_escape(', '.join(others))}.", ""]
    not_graded = [r for r in results if r.status != "graded"]
    if not_graded:
        lines += ["Not graded:", ""] + [f"- {md_escape(r.student)}: {md_escape(r.status)}" for r in not_graded] + [""]
    return "\n".join(lines)


def _bar_plot(rows: Sequence[dict[str, str]], results: Sequence[SubmissionResult]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [r for r in rows if r["students"] != "0"][::-1]
    graded = sum(r.status == "graded" for r in results)
    fig = Figure(figsize=(7.5, 0.9 + 0.32 * max(len(shown), 1)), layout="constrained")
    ax = fig.subplots()
    ax.barh([r["kind"] for r in shown], [int(r["students"]) for r in shown], color="#4c72b0")
    for i, row in enumerate(shown):
        ax.text(int(row["students"]) + 0.05, i, row["students"], va="center", fontsize=8)
    ax.set_xlabel(f"students (of {graded} graded)")
    ax.set_title("How many students have each catalogued mistake", fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf, metadata={"Software": "scratchnet_reference.grade"})
    return buf.getvalue()


def gradescope_json(result: SubmissionResult, course: Course) -> dict:
    """Gradescope's ``results.json`` for one submission (see the module docstring)."""
    tests = []
    for check in result.checks:
        points = course.points_for(check.check)
        text = "\n\n".join(fence(t) if kind == "code" else md_escape(t)
                         for kind, t in check_text(check, course.hint(check.check)))
        tests.append(dict(name=check.check, score=points if check.status == "pass" else 0.0, max_score=points,
                          status="passed" if check.status == "pass" else "failed", output=text,
                          output_format="md", visibility=course.visibility))
    if result.status != "graded":
        for name in course.required:
            tests.append(dict(name=name, score=0.0, max_score=course.points_for(name), status="failed",
                              output="not run: the submission could not be graded", output_format="md",
                              visibility=course.visibility))
    earned, possible = score(result, course)
    summary = f"{earned:g} / {possible:g}" + ("" if result.status == "graded" else
                                              f" — the submission {result.status}: {result.detail}")
    return dict(score=earned, output=md_escape(summary), output_format="md", visibility=course.visibility,
                stdout_visibility="hidden", tests=tests)


def write_outputs(results: Sequence[SubmissionResult], course: Course, out: str | Path) -> dict[str, Path]:
    """Write every output (see the module docstring) into ``out``; returns {what: path}."""
    out = Path(out)
    for folder in (out, out / "feedback", out / "gradescope"):
        folder.mkdir(parents=True, exist_ok=True)
    names = {r.student: safe_name(r.student) for r in results}
    if len(set(names.values())) != len(names):
        raise ValueError(f"two students would share a file name: {sorted(names.values())}")
    written = {"grades": atomic_write(out / "grades.csv", _csv(grade_rows(results, course), GRADE_COLUMNS))}
    rows = misconception_rows(results)
    written["misconceptions"] = atomic_write(out / "misconceptions.csv",
                                             _csv(rows, ("kind", "students", "share", "who", "words")))
    written["misconceptions_md"] = atomic_write(out / "misconceptions.md", _misconceptions_md(rows, results))
    written["misconceptions_png"] = atomic_write(out / "misconceptions.png", _bar_plot(rows, results))
    for result in results:
        name = names[result.student]
        atomic_write(out / "feedback" / f"{name}.md", markdown(result, course))
        atomic_write(out / "feedback" / f"{name}.html", html_page(result, course))
        (out / "gradescope" / name).mkdir(exist_ok=True)
        atomic_write(out / "gradescope" / name / "results.json",
                     json.dumps(gradescope_json(result, course), indent=2, ensure_ascii=False) + "\n")
    timings = [dict(student=r.student, status=r.status, seconds=f"{r.seconds:.2f}", peak_rss_mb=f"{r.peak_rss_mb:.0f}")
               for r in sorted(results, key=lambda r: r.student)]
    written["timings"] = atomic_write(out / "timings.csv", _csv(timings, ("student", "status", "seconds",
                                                                           "peak_rss_mb")))
    return written
