"""The worked class (``examples/class``): its committed grade table names each submission's planted
mistakes (``expected.csv``) and nothing else, grades the hanging and crashing ones as such; and a
fresh grading of part of the class — the hang, ``sys.exit`` and ``os._exit`` among them — gives the
committed rows again, without the batch stopping."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from scratchnet_reference.grade.command import grade_class
from scratchnet_reference.grade.course import load_course
from scratchnet_reference.grade.outputs import grade_rows

ROOT = Path(__file__).resolve().parents[2]
CLASS = ROOT / "examples" / "class"
TABLE = ROOT / "reports" / "grade" / "class" / "grades.csv"
COMPARED = ("status", "root_cause_kinds", "factor")


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def expected() -> dict[str, tuple[str, dict[str, str]]]:
    """student -> (status, {check: planted kind})"""
    out = {}
    for row in read(CLASS / "expected.csv"):
        planted = dict(item.rsplit(":", 1) for item in row["planted"].split(";") if item)
        out[row["student"]] = (row["status"], planted)
    return out


def test_every_submission_is_in_the_table_and_expected():
    submissions = {p.stem for p in (CLASS / "submissions").iterdir()}
    assert submissions == set(expected()) == {r["student"] for r in read(TABLE)}
    assert len(submissions) >= 20


@pytest.mark.parametrize("student", sorted(expected()))
def test_the_table_names_the_planted_mistakes_and_nothing_else(student):
    status, planted = expected()[student]
    rows = [r for r in read(TABLE) if r["student"] == student]
    if status != "graded":
        assert [(r["check"], r["status"]) for r in rows] == [("submission", status)]
        assert rows[0]["score"] == "0" and rows[0]["detail"]
        return
    failing = {r["check"]: r["root_cause_kinds"].split(";") for r in rows if r["status"] in ("fail", "error")}
    assert set(failing) == set(planted), f"{student}: failing {failing}, planted {planted}"
    for check, kind in planted.items():
        assert kind in failing[check], f"{student}: {check} names {failing[check]}, planted {kind}"
    assert all(r["status"] in ("pass", "missing") for r in rows if r["check"] not in planted)


def test_the_hang_and_the_crashes_are_graded_as_such_and_the_batch_goes_on():
    table = {r["student"]: r for r in read(TABLE) if r["check"] == "submission"}
    assert table["noah_fischer"]["status"] == "timeout"
    assert table["olivia_grant"]["detail"].startswith("sys.exit(1) while importing")
    # os._exit(3) inside one function: that function's failure (the op check's isolation worker), the rest graded
    quinn = {r["check"]: r for r in read(TABLE) if r["student"] == "quinn_ali"}
    assert quinn["relu"]["status"] == "fail" and quinn["relu"]["root_cause_kinds"] == "exit"
    assert "submission" not in quinn and quinn["softmax_backward"]["status"] == "pass"
    assert table["rosa_silva"]["status"] == "memory" and table["pat_moreau"]["status"] == "import_error"


def test_a_fresh_grading_gives_the_committed_rows():
    """Part of the class (the hang, sys.exit, os._exit, two mistakes in one submission, the network
    adapter), graded now in one batch: the same statuses, root-cause kinds and factors as the table."""
    students = ["noah_fischer", "olivia_grant", "quinn_ali.py", "carol_diaz", "tina_wu"]
    course = load_course(CLASS / "course.toml")
    course.seconds = 45.0  # the hang costs the whole limit; the others need ~15 s on a loaded 2-core machine
    results = grade_class([CLASS / "submissions" / s for s in students], course, workers=2)
    fresh = {(r["student"], r["check"]): tuple(r[k] for k in COMPARED) for r in grade_rows(results, course)}
    names = {s.removesuffix(".py") for s in students}
    committed = {(r["student"], r["check"]): tuple(r[k] for k in COMPARED) for r in read(TABLE)
                 if r["student"] in names}
    assert fresh == committed
