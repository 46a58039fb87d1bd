"""``as_agreed``: once both sides overflow at the same elements, the measured array is torch's at its
non-finite elements and the implementation's own everywhere else."""

from __future__ import annotations

import numpy as np
from scratchnet_reference.core.overflow import as_agreed


def test_finite_elements_stay_the_implementations_own():
    agreed = as_agreed(np.array([np.inf, 1.25, -3.0, np.nan]), np.array([np.inf, 1.0, -2.0, np.nan]))
    assert np.array_equal(agreed, np.array([np.inf, 1.25, -3.0, np.nan]), equal_nan=True)
    mixed = as_agreed(np.array([np.nan, 7.0]), np.array([-np.inf, 6.0]))
    assert np.array_equal(mixed, np.array([-np.inf, 7.0]))
