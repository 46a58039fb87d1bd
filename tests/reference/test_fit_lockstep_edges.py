"""``fit_lockstep`` at its edges: torch's side of a fused pair trains on torch's fused loss (stable at
logits ±1000, where softmax-then-log overflows to an infinite loss), and an empty schedule (0 epochs)
that ``fit`` does not keep is reported at step 0 of epoch 0."""

from __future__ import annotations

import math

import numpy as np
from scratchnet_reference.core.batches import large_logit_problem
from scratchnet_reference.core.fit_lockstep import fit_lockstep
from scratchnet_reference.core.protocol import initial_state

from scratchnet import ModelSpec, Network

SGD = {"name": "sgd", "lr": 0.1}


def problem():
    spec = ModelSpec((3, 5, 2), hidden="tanh", output="softmax", loss="cross_entropy", dtype="float64", seed=4)
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 2.0, (13, 3))
    return spec, x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)


def test_a_fused_pair_at_logits_of_a_thousand_trains_in_lockstep_with_torchs_fused_loss():
    spec, x, y = problem()
    state, x, y = large_logit_problem(spec, initial_state(spec), x, y)
    records = fit_lockstep(spec, x, y, SGD, batch_size=5, epochs=1, shuffle=False, state=state)
    steps = [r for r in records if r.check == "fit_step"]
    assert len(steps) == 3 and all(math.isfinite(r.expected_value) for r in steps)
    assert max(r.expected_value for r in steps) > 10  # the logits are large: some sample is far off
    assert all(r.status == "pass" for r in records), [r.note for r in records if r.status != "pass"]


class OneEpochAnyway(Network):
    def fit(self, x, y, *, epochs, **kw):
        return super().fit(x, y, epochs=max(epochs, 1), **kw)


def test_an_empty_schedule_that_fit_does_not_keep_fails_at_step_zero_of_epoch_zero():
    spec, x, y = problem()
    records = fit_lockstep(spec, x, y, SGD, batch_size=5, epochs=0, network_factory=OneEpochAnyway)
    failed = [r for r in records if r.status == "fail"]
    assert [(r.check, r.step) for r in failed] == [("fit_step", 0)]
    assert failed[0].note == ("curves part at step 0 (epoch 0, batch 1 of 0): fit ran 3 steps, the schedule "
                              "(0 epochs of batches []) has 0")
