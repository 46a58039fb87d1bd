"""Reproducers run: for every failing record of the worked examples' cases, the snippet of
:mod:`scratchnet_reference.core.reproducer` — imports, data, the user's call, torch's expected values,
an assertion — raises ``AssertionError`` on the network as written and passes on its fixed version."""

from __future__ import annotations

import pytest
from scratchnet_reference.conformance.runner import case_problem, check_case, target_kind
from scratchnet_reference.core.adapter import load_implementation
from scratchnet_reference.core.batches import problems
from scratchnet_reference.core.matrix import Case
from scratchnet_reference.core.reproducer import LITERAL, reproducer

EXAMPLES = [("mnist_columns", Case("relu", "softmax", "cross_entropy", "mean", "float64")),
            ("mnist_rows", Case("sigmoid", "softmax", "cross_entropy", "mean", "float64"))]


def _failing(example: str, case: Case):
    ref = f"examples.{example}.adapter:make_implementation"
    impl, caps = load_implementation(ref)
    sizes = caps.architecture.case_sizes()
    records = check_case(impl, case, diagnose=False, sizes=sizes)
    spec, x, y = case_problem(case, 0, sizes)
    by_batch = {batch: rest for batch, *rest in problems(spec, x, y)}
    return ref, [(r, by_batch[r.batch]) for r in records if r.status == "fail"]


@pytest.mark.parametrize("example, case", EXAMPLES, ids=[e for e, _ in EXAMPLES])
def test_every_reproducer_fails_on_the_network_and_passes_on_its_fix(example, case):
    ref, failing = _failing(example, case)
    assert {r.batch for r, _ in failing} == {"random", "kink", "large_logits"}
    for r, (spec, state, x, y) in failing:
        code = reproducer(r, spec, state, x, y, impl=ref, seed=0, target=target_kind(case.loss))
        assert "import numpy as np" in code and "load_implementation(" in code
        with pytest.raises(AssertionError):
            exec(compile(code, f"<reproducer {r.check} {r.param} {r.batch}>", "exec"), {})
        exec(compile(code.replace(":make_implementation", ":make_fixed"), "<fixed>", "exec"), {})


def test_a_784_wide_problem_is_rebuilt_by_seeded_calls_not_written_out():
    ref, failing = _failing(*EXAMPLES[0])
    r, (spec, state, x, y) = next((r, p) for r, p in failing if r.batch == "kink")
    code = reproducer(r, spec, state, x, y, impl=ref, seed=0, target="labels")
    assert x.size > LITERAL and "make_batch(spec, 8, seed=0, target='labels')" in code
    assert "kink_problem(spec, state, x, y)" in code and len(code) < 4000
