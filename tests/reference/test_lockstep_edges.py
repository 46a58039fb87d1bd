"""``lockstep`` at its edges: without ``gd_mode`` it trains in mini-batches; a step whose torch reference is
itself broken (the modular softmax-then-log at logits ±1000 gives an infinite loss) is ``unverified``, and
its note says why."""

from __future__ import annotations

from scratchnet_reference import GD_MODES, lockstep
from scratchnet_reference.core.batches import large_logit_problem
from scratchnet_reference.core.matrix import make_batch
from scratchnet_reference.core.protocol import initial_state

from scratchnet import ModelSpec

SGD = {"name": "sgd", "lr": 0.1}
SPEC = ModelSpec((3, 4, 3), hidden="tanh", output="softmax", loss="cross_entropy", dtype="float64", seed=2)


def test_the_default_mode_is_mini_batch(correct_impl):
    x, y = make_batch(SPEC, 13, seed=1)
    records = lockstep(correct_impl, SPEC, x, y, SGD, steps=3, shuffle=False)
    steps = [r for r in records if r.check == "training_step"]
    assert {r.gd_mode for r in records} == {"mini_batch"}
    assert [r.shape for r in steps] == [f"({GD_MODES['mini_batch'](13)},)"] * 2 + [
        f"({13 - 2 * GD_MODES['mini_batch'](13)},)"]


def test_a_broken_torch_reference_leaves_the_step_unverified_and_says_why(correct_impl):
    spec = ModelSpec((3, 4, 3), hidden="tanh", output="softmax", loss="cross_entropy", dtype="float32", seed=2)
    x, y = make_batch(spec, 13, seed=1)
    state, x, y = large_logit_problem(spec, initial_state(spec), x, y)  # a probability underflows to 0
    records = lockstep(correct_impl, spec, x, y, SGD, gd_mode="full_batch", steps=1, flavour="modular",
                       state=state)
    step = next(r for r in records if r.check == "training_step")
    assert step.status == "unverified"
    assert step.note == "torch produced NaN/inf"
