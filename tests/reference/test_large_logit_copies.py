"""``large_logit_problem`` gives back a state of its own: no array shared with the state it was given, so
writing into one problem's weights cannot change another's."""

from __future__ import annotations

import numpy as np
from scratchnet_reference.core.batches import large_logit_problem
from scratchnet_reference.core.matrix import make_batch
from scratchnet_reference.core.protocol import initial_state

from scratchnet import ModelSpec


def test_the_scaled_state_shares_no_memory_with_the_given_one():
    spec = ModelSpec((4, 5, 3), hidden="tanh", output="softmax", loss="cross_entropy", seed=2)
    x, y = make_batch(spec, 6, seed=0)
    state = initial_state(spec)
    scaled, xb, _ = large_logit_problem(spec, state, x, y)
    assert set(scaled) == set(state)
    assert not any(np.shares_memory(scaled[k], state[k]) for k in state)
    assert not np.shares_memory(xb, x)
