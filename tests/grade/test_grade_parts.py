"""The parts of ``grade`` that need no child process: the course file, the course's names mapped onto the
suite's signatures, escaping of student-derived text, the grade table, the misconception count and
Gradescope's results.json."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scratchnet_reference.grade.child import build_functions, guarded_functions, with_methods
from scratchnet_reference.grade.course import Course, CourseError, load_course
from scratchnet_reference.grade.feedback import fence, html_page, markdown, md_escape
from scratchnet_reference.grade.harness import catalogue, op_arguments, op_names, read_functions
from scratchnet_reference.grade.outputs import grade_rows, gradescope_json, misconception_rows, safe_name, write_outputs
from scratchnet_reference.grade.results import Cause, CheckResult, SubmissionResult

OP_ARGS = {op: op_arguments(op) for op in op_names()}


def course_file(tmp_path, text: str, name: str = "course.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def aliases(course: Course) -> dict:
    return {op: [dict(a) for a in c["names"][op]] for c in [course.to_json()] for op in c["names"]}


# --------------------------------------------------------------------------------------------
# The course file
# --------------------------------------------------------------------------------------------

def test_the_worked_class_course_file_loads():
    course = load_course("examples/class/course.toml")
    assert course.required[0] == "sigmoid" and course.hint("softmax_backward") == "symptom"
    assert course.hint("relu") == "concept" and course.points_for("softmax_backward") == 2.0
    assert Course.from_json(json.loads(json.dumps(course.to_json()))) == course


@pytest.mark.parametrize("text, words", [
    ('required = ["softmaxx"]', "did you mean softmax"),
    ('[hints]\nsoftmax = "everything"', "hints.softmax must be one of"),
    ('[names]\nsigmoid_backward = { function = "sp", args = ["x"] }', "the op's arguments are ['z', 'a', 'g']"),
    ('[names]\nsigmoid = { function = "s", cache_from = "f" }', "cache_from is for a backward"),
    ('[limits]\nseconds = 0', "seconds must be > 0"),
    ('[gradescope]\nvisibility = "public"', "gradescope.visibility must be one of"),
    ('colour = "red"', "unknown keys ['colour']"),
    ('[network]\nadapter = "nowhere.py:make"', "network.adapter must be 'file.py:factory'"),
])
def test_a_bad_course_file_is_refused_naming_the_key(tmp_path, text, words):
    with pytest.raises(CourseError, match=None) as info:
        load_course(course_file(tmp_path, text))
    assert words in str(info.value)


# --------------------------------------------------------------------------------------------
# The course's names onto the suite's signatures
# --------------------------------------------------------------------------------------------

def sig(x):
    return 1 / (1 + np.exp(-x))


def test_each_convention_becomes_the_suite_signature(tmp_path):
    course = load_course(course_file(tmp_path, """
[names]
sigmoid = [{ function = "sigmoid_forward", output = 0 }]
sigmoid_backward = [{ function = "sigmoid_backward", cache_from = "sigmoid_forward" }, "sigmoid_backward",
                    { function = "sigmoid_prime", args = ["z"], times = "g" }]
relu_backward = [{ function = "relu_prime", args = ["z"], times = "g" }]
"""))
    z = np.array([[-1.0, 0.0, 2.0]])
    a, g = sig(z), np.array([[0.5, -2.0, 3.0]])
    right = g * a * (1 - a)
    cs231n = {"sigmoid_forward": lambda x: (sig(x), sig(x)), "sigmoid_backward": lambda dout, cache: dout * cache
              * (1 - cache)}
    found = build_functions(cs231n, aliases(course), OP_ARGS)
    np.testing.assert_allclose(found["sigmoid"](z), a)
    np.testing.assert_allclose(found["sigmoid_backward"](z, a, g), right)
    # a same-named function of the suite's own convention (z, a, g) is not taken for (dout, cache)
    suite = {"sigmoid_backward": lambda z, a, g: g * a * (1 - a)}
    np.testing.assert_allclose(build_functions(suite, aliases(course), OP_ARGS)["sigmoid_backward"](z, a, g), right)
    helpers = {"sigmoid_prime": lambda x: sig(x) * (1 - sig(x)), "relu_prime": lambda x: (x > 0) * 1.0}
    found = build_functions(helpers, aliases(course), OP_ARGS)
    np.testing.assert_allclose(found["sigmoid_backward"](z, a, g), right)
    np.testing.assert_allclose(found["relu_backward"](z, a, g), g * (z > 0))
    assert "sigmoid" not in found  # nothing of that name: the op is missing, not guessed


def test_an_ops_dict_wins_over_a_same_named_helper_and_methods_of_a_course_class_count():
    namespace = {"softmax_backward": lambda s, g: s, "OPS": {"softmax_backward": lambda z, a, g: a * g}}
    found = build_functions(namespace, {}, OP_ARGS)
    assert found["softmax_backward"](1.0, 2.0, 3.0) == 6.0

    class TwoLayerNet:
        def __init__(self, n_in, n_hidden, n_out):
            self.W1 = np.zeros((n_in, n_hidden))

        def relu(self, z):
            return np.maximum(z, 0)

    namespace = with_methods({"TwoLayerNet": TwoLayerNet}, {"TwoLayerNet": [4, 5, 3]})
    found, _, _ = read_functions(guarded_functions(namespace))
    np.testing.assert_array_equal(found["relu"](np.array([[-1.0, 2.0]])), [[0.0, 2.0]])


def test_sys_exit_inside_a_function_is_that_function_raising():
    armed = []

    def softmax(z):
        if armed:  # the loader's own validation calls pass; a check's call exits
            raise SystemExit(2)
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    found, _, _ = read_functions(guarded_functions({"softmax": softmax}))
    armed.append(True)
    with pytest.raises(RuntimeError, match=r"softmax called sys.exit\(2\)"):
        found["softmax"](np.zeros((2, 3)))


def _sig(z):
    return 1 / (1 + np.exp(-z))


def test_learners_names_need_no_course_mapping():
    """``softmax_derivative(s)`` (a Jacobian), ``sigmoid_prime(z)`` and CS231n's ``relu_backward(dout,
    cache)`` are read as ``ops`` reads them, conventions probed; no course names at all."""
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def softmax_derivative(s):  # the C×C Jacobian of one sample
        return np.diag(s) - np.outer(s, s)

    def sigmoid_prime(z):
        return _sig(z) * (1 - _sig(z))

    def relu_forward(x):
        return np.maximum(x, 0), x

    def relu_backward(dout, cache):
        return dout * (cache > 0)

    namespace = {"softmax": softmax, "softmax_derivative": softmax_derivative, "sigmoid_prime": sigmoid_prime,
                 "relu_forward": relu_forward, "relu_backward": relu_backward}
    assert build_functions(namespace, {}, OP_ARGS) == {}  # no explicit mapping
    found, _, errors = read_functions(guarded_functions(namespace))
    assert not errors
    z = np.array([[-1.0, 0.0, 2.0], [0.5, -0.25, 1.0]])
    g = np.array([[0.5, -2.0, 3.0], [1.0, 0.25, -1.0]])
    s = softmax(z)
    np.testing.assert_allclose(found["softmax_backward"](z, s, g), s * (g - (s * g).sum(axis=1, keepdims=True)))
    np.testing.assert_allclose(found["sigmoid_backward"](z, _sig(z), g), g * _sig(z) * (1 - _sig(z)))
    np.testing.assert_allclose(found["relu_backward"](z, np.maximum(z, 0), g), g * (z > 0))
    assert "relu_forward" in found["relu_backward"].called_as


def test_the_course_mapping_overrides_the_reading(tmp_path):
    """An op the course maps is not read again by name: the course's convention is the one used."""
    course = load_course(course_file(tmp_path, """
[names]
relu_backward = [{ function = "relu_backward", args = ["z"], times = "g" }]
"""))
    namespace = {"relu_backward": lambda z: (z > 0) * 1.0}
    found = build_functions(namespace, aliases(course), OP_ARGS)
    read, _, _ = read_functions(guarded_functions(namespace), taken=found)
    assert set(found) == {"relu_backward"} and read == {}
    z, g = np.array([[-1.0, 2.0]]), np.array([[3.0, 4.0]])
    np.testing.assert_allclose(found["relu_backward"](z, None, g), [[0.0, 4.0]])


def test_a_function_whose_conventions_cannot_be_read_is_an_error_not_missing():
    def softmax_backward(s):
        raise ValueError("not written yet")

    found, _, errors = read_functions(guarded_functions({"softmax_backward": softmax_backward}))
    assert found == {} and [(e.check, e.status) for e in errors] == [("softmax_backward", "error")]
    assert "softmax_backward(s) claims to be softmax's derivative" in errors[0].detail


# --------------------------------------------------------------------------------------------
# Escaping and the outputs
# --------------------------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script> **bold** [x](http://e) `code` # heading\n- item | cell"


def hostile_result() -> SubmissionResult:
    cause = Cause("softmax_s1s", what=f"words {HOSTILE}", evidence="e", right="r",
                  reproducer="z = np.array([[1.0]])\n```\n<b>")
    checks = [CheckResult("softmax_backward", "fail", 1e10, 6, 6, causes=[cause]),
              CheckResult("softmax", "pass", 1e-6, 6, 0),
              CheckResult("relu", "error", math.inf, detail=HOSTILE)]
    return SubmissionResult(HOSTILE, "graded", checks=checks, output=HOSTILE + "\n```")


def test_nothing_a_student_wrote_becomes_markup():
    course = Course(hints={"softmax_backward": "formula"})
    page = html_page(hostile_result(), course)
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>" not in page
    md = markdown(hostile_result(), course)
    text = re.sub(r"(?ms)^(`{3,})text\n.*?\n\1$", "", md)  # outside the fenced blocks (shown verbatim)
    assert md.count("<script>") == 1 and "<script>" not in text  # once: the student's output, fenced
    assert "**bold**" not in text and not re.search(r"(?<!\\)\]\(http", text)  # no emphasis, no link
    assert not any(line.startswith(("- item", "# heading")) for line in text.splitlines())
    assert md_escape("# a\n1. b") == "\\# a  \n\\1. b"
    block = fence("a ```` b")
    assert block.startswith("`````text\n") and block.endswith("\n`````")


def test_the_hint_level_decides_how_much_is_said():
    result = hostile_result()
    symptom = markdown(result, Course(hints={"default": "symptom"}))
    concept = markdown(result, Course(hints={"default": "concept"}))
    formula = markdown(result, Course(hints={"default": "formula"}))
    assert "what is wrong" not in symptom and "fails: 6 of 6 examples" in symptom
    assert "what is wrong" in concept and "the right formula" not in concept
    assert "the right formula" in formula


def test_grade_rows_misconceptions_and_gradescope(tmp_path):
    course = Course(required=("softmax", "softmax_backward", "relu"), points={"softmax_backward": 2.0},
                    visibility="after_published")
    hang = SubmissionResult("noah", "timeout", "no result within the time limit of 60 s")
    results = [hostile_result(), hang,
               SubmissionResult("bob", "graded", checks=[CheckResult("softmax_backward", "fail", 3.0, 6, 6, causes=[
                   Cause("softmax_s1s"), Cause("factor", 2.0, "2")])])]
    rows = grade_rows(results, course)
    assert [r["student"] for r in rows] == sorted(r["student"] for r in rows)
    assert {"student": "noah", "check": "submission", "status": "timeout", "score": "0", "max_score": "4"}.items() \
        <= next(r for r in rows if r["student"] == "noah").items()
    bob = next(r for r in rows if r["student"] == "bob")
    assert (bob["root_cause_kinds"], bob["factor"], bob["max_score"]) == ("factor;softmax_s1s", "2", "2")
    counts = {r["kind"]: int(r["students"]) for r in misconception_rows(results)}
    assert counts["softmax_s1s"] == 2 and counts["factor"] == 1 and set(catalogue()) <= set(counts)
    spec = gradescope_json(hang, course)
    assert spec["score"] == 0 and [t["name"] for t in spec["tests"]] == list(course.required)
    assert {t["visibility"] for t in spec["tests"]} == {"after_published"}
    graded = gradescope_json(results[2], course)
    assert graded["tests"][0] | {"output": ""} == dict(name="softmax_backward", score=0.0, max_score=2.0,
                                                       status="failed", output="", output_format="md",
                                                       visibility="after_published")
    written = write_outputs(results, course, tmp_path)
    assert written["misconceptions_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    name = safe_name(HOSTILE)
    assert "/" not in name and (tmp_path / "feedback" / f"{name}.html").exists()
    assert json.loads((tmp_path / "gradescope" / "noah" / "results.json").read_text())["score"] == 0
