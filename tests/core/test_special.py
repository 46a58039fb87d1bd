"""``scratchnet.special.erf`` against :func:`math.erf` (the C library's correctly rounded-ish erf)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet.special import erf

# Cody's rational approximations: worst measured over 3e5 points is 4.0 ulp (x ≈ −0.4739, just
# past the first branch boundary); 5 leaves hypothesis a little room.
MAX_ULP = 5


def ulp_error(x: np.ndarray) -> np.ndarray:
    """|erf(x) − math.erf(x)| in units of the spacing at math.erf(x) (float64)."""
    expected = np.array([math.erf(v) for v in x])
    return np.abs(erf(x) - expected) / np.spacing(np.abs(expected))


# Dense grid over every branch (|x| ≤ 0.46875, ≤ 4, > 4) and across both branch boundaries.
GRID = np.concatenate([np.linspace(-7.0, 7.0, 20001), np.linspace(-0.5, 0.5, 4001),
                       np.nextafter(0.46875, [-1, 1]), np.nextafter(-0.46875, [-1, 1]),
                       np.nextafter(4.0, [-1, 1]), np.nextafter(-4.0, [-1, 1]), [0.46875, 4.0]])
EXTREMES = np.array([1e-300, 5e-324, 1e-17, 1.11e-16, 2e-16, 1e-8, 5.9, 6.0, 26.5, 26.6, 27.0,
                     100.0, 1e4, 1e300, np.finfo(np.float64).max])


def test_erf_dense_grid_within_a_few_ulp():
    x = GRID[GRID != 0]
    assert ulp_error(x).max() <= MAX_ULP


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_erf_extremes(sign):
    x = sign * EXTREMES
    assert ulp_error(x).max() <= MAX_ULP
    assert np.all(np.abs(erf(x)) <= 1.0)


def test_erf_zero_infinities_and_nan():
    out = erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan]))
    assert out[0] == 0.0 and not np.signbit(out[0])
    assert out[1] == 0.0 and np.signbit(out[1])     # math.erf(-0.0) is -0.0
    assert out[2] == 1.0 and out[3] == -1.0
    assert np.isnan(out[4])


@given(st.floats(-30.0, 30.0, allow_nan=False))
def test_erf_matches_math_erf_anywhere(x):
    expected = math.erf(x)
    spacing = np.spacing(abs(expected)) if expected else np.spacing(0.0)
    assert abs(float(erf(np.array([x]))[0]) - expected) <= MAX_ULP * spacing


def test_erf_is_odd():
    x = GRID
    np.testing.assert_array_equal(erf(-x), -erf(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_preserves_float_dtype(dtype):
    x = np.linspace(-5, 5, 101, dtype=dtype)
    out = erf(x)
    assert out.dtype == dtype and out.shape == x.shape


def test_erf_float32_is_float64_rounded_once():
    x = np.linspace(-5, 5, 1001, dtype=np.float32)
    np.testing.assert_array_equal(erf(x), erf(x.astype(np.float64)).astype(np.float32))


def test_erf_keeps_shape_of_matrices():
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    assert erf(x).shape == (3, 4)
    np.testing.assert_array_equal(erf(x).ravel(), erf(x.ravel()))
