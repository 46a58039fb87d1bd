"""A reproducer whose problem is written out (no seeded calls rebuild it) runs as given: every weight
changed from ``initial_state`` → the whole ``state`` written as a literal; an expected tensor too large to
write (over ``LITERAL_EXPECTED`` values) → recomputed by ``torch_expected`` in the snippet. On the correct
network the snippet's assertion passes."""

from __future__ import annotations

import numpy as np
from scratchnet_reference import ScratchnetImplementation
from scratchnet_reference.core.compare import compare_model
from scratchnet_reference.core.protocol import initial_state
from scratchnet_reference.core.reproducer import LITERAL, LITERAL_EXPECTED, reproducer

from scratchnet import ModelSpec


def test_a_written_out_problem_with_a_large_expected_gradient_runs_and_passes():
    spec = ModelSpec((3, 30, 2), hidden="tanh", output="softmax", loss="cross_entropy", dtype="float64", seed=3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3))
    y = rng.integers(0, 2, 5)
    state = {k: v + 0.125 for k, v in initial_state(spec).items()}  # every entry changed
    impl = ScratchnetImplementation()
    records = compare_model(impl, spec, x, y, state=state, fd="never", flavours=["modular"])
    record = next(r for r in records if r.check == "gradient" and r.param == "layers.0.weight")
    assert x.size <= LITERAL and 3 * 30 > LITERAL_EXPECTED
    code = reproducer(record, spec, state, x, y)
    assert "state = {" in code and "expected = torch_expected(spec, state, x, y" in code
    exec(compile(code, "<reproducer>", "exec"), {"impl": impl})
