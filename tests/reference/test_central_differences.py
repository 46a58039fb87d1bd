"""The finite-difference oracle's plumbing: ``central_differences`` gives a gradient of ``x``'s shape
(a 1-D array in ``entries``' order when entries are chosen), and ``fd_entries`` picks the ``limit // 2``
entries where the two gradients differ most plus ``limit − limit // 2`` evenly spread ones."""

from __future__ import annotations

import numpy as np
from scratchnet_reference.core.compare import central_differences, fd_entries


def test_the_difference_quotient_has_the_shape_of_x():
    x = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    grad = central_differences(lambda v: float((v ** 2).sum()), x)
    assert grad.shape == (2, 3)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-8, atol=1e-8)
    picked = central_differences(lambda v: float((v ** 2).sum()), x, entries=np.array([4, 0]))
    assert picked.shape == (2,)
    np.testing.assert_allclose(picked, [0.0, 2.0], atol=1e-8)


def test_fd_entries_takes_the_worst_half_and_an_even_spread():
    expected = np.zeros(100)
    actual = expected.copy()
    actual[[10, 20, 30, 40, 60, 70]] = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]  # 70: sixth worst, not taken
    # worst 5: 10, 20, 30, 40, 60; spread: linspace(0, 99, 5) → 0, 24, 49, 74, 99
    assert fd_entries(actual, expected, limit=10).tolist() == [0, 10, 20, 24, 30, 40, 49, 60, 74, 99]
