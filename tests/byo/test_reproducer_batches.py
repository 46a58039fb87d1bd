"""A reproducer rebuilds a matrix problem by seeded calls when it can: for the ``large_logits`` batch,
``make_batch`` + ``initial_state`` + ``large_logit_problem``; a problem those calls do not give back exactly
is not claimed to be rebuilt (``None``: the data are written out instead)."""

from __future__ import annotations

from scratchnet_reference.core.batches import large_logit_problem
from scratchnet_reference.core.matrix import make_batch
from scratchnet_reference.core.protocol import initial_state
from scratchnet_reference.core.reproducer import _batch_lines

from scratchnet import ModelSpec


def test_the_large_logit_problem_is_rebuilt_by_its_seeded_calls():
    spec = ModelSpec((4, 5, 3), hidden="tanh", output="softmax", loss="cross_entropy", seed=2)
    x, y = make_batch(spec, 6, seed=0, target="labels")
    state, xb, yb = large_logit_problem(spec, initial_state(spec), x, y)
    assert _batch_lines(spec, state, xb, yb, "large_logits", 0, 6, "labels") == [
        "x, y = make_batch(spec, 6, seed=0, target='labels')", "state = initial_state(spec)",
        "state, x, y = large_logit_problem(spec, state, x, y)   # output layer scaled: logits ±1000"]
    # the unscaled state is not the large-logit problem: nothing is claimed
    assert _batch_lines(spec, initial_state(spec), x, y, "large_logits", 0, 6, "labels") is None
