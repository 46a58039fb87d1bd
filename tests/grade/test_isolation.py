"""Each submission in its own limited process: a hang, a crash, ``sys.exit``, ``os._exit``, an import
error or a memory hog is that student's result, and the batch goes on to grade the others."""

from __future__ import annotations

import textwrap

import pytest
from scratchnet_reference.grade.command import grade_class
from scratchnet_reference.grade.course import Course
from scratchnet_reference.grade.isolate import grade_task, pack

RELU = """
import numpy as np


def relu(z):
    return np.maximum(z, 0)


def relu_backward(z, a, g):
    return g * (z >= 0)      # wrong at the kink
"""

BROKEN = {
    "hangs": ("timeout", "while True:\n    pass\n"),
    "exits": ("exited", "import sys\nsys.exit('usage: train.py DATA')\n"),
    "os_exit": ("exited", "import os\nos._exit(7)\n"),
    "segfault": ("crashed", "import ctypes\nctypes.string_at(0)\n"),
    "hog": ("memory", "import numpy as np\nX = np.ones((40000, 40000))\n"),
    "no_tf": ("import_error", "import tensorflow\n"),
    "syntax": ("import_error", "def relu(z)\n    return z\n"),
    "nothing": ("not_gradable", "x = 1\n"),
}


def write(folder, name, text):
    path = folder / name
    path.mkdir()
    (path / "solution.py").write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_submission_is_its_own_named_result(tmp_path, name):
    status, code = BROKEN[name]
    course = Course(seconds=4, memory_mb=1024)
    result = grade_task(pack(write(tmp_path, name, code), course))
    assert (result.student, result.status) == (name, status), result.detail
    assert result.detail
    if name == "hangs":
        assert "time limit of 4 s" in result.detail and result.seconds < 4 + 10
    if name == "exits":
        assert "sys.exit('usage: train.py DATA') while importing (solution.py:2)" == result.detail
    if name == "os_exit":
        assert "exited with code 7" in result.detail


def test_the_batch_goes_on_past_every_broken_submission(tmp_path):
    paths = [write(tmp_path, name, code) for name, (_, code) in BROKEN.items()]
    paths.append(write(tmp_path, "relu_kink", RELU))
    results = grade_class(paths, Course(seconds=30, memory_mb=2048, max_examples=6), workers=2)
    assert {r.student: r.status for r in results} == {**{n: s for n, (s, _) in BROKEN.items()},
                                                      "relu_kink": "graded"}
    graded = next(r for r in results if r.student == "relu_kink")
    assert {c.check: (c.status, c.kinds) for c in graded.checks} == {"relu": ("pass", []),
                                                                     "relu_backward": ("fail", ["kink"])}
    assert graded.peak_rss_mb > 50  # the child's own peak (torch imported), from wait4
