"""``flat_schedule``: the first ``steps`` batches of ``epoch_batches`` with the same batch size, shuffle and
seed, across as many epochs as they take; ``epoch_batches`` shuffles by default."""

from __future__ import annotations

import numpy as np
from scratchnet_reference.core.schedule import epoch_batches, flat_schedule


def test_the_flat_schedule_is_the_seeded_epochs_batches_in_order():
    for seed in (0, 7):
        flat = flat_schedule(7, 3, 5, seed=seed)
        want = [idx for epoch in epoch_batches(7, 3, 2, seed=seed) for idx in epoch][:5]
        assert len(flat) == 5 and all(np.array_equal(a, b) for a, b in zip(flat, want, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(flat_schedule(7, 3, 5, seed=0), flat_schedule(7, 3, 5, seed=7),
                                                        strict=True))


def test_epoch_batches_shuffle_unless_told_not_to():
    shuffled = epoch_batches(8, 8, 1, seed=0)[0][0]
    assert sorted(shuffled.tolist()) == list(range(8)) and shuffled.tolist() != list(range(8))
    assert np.array_equal(shuffled, np.random.default_rng(0).permutation(8))
    assert epoch_batches(8, 8, 1, shuffle=False)[0][0].tolist() == list(range(8))
