"""The initialisers' distributions, pinned by their documented parameters (the table in
:mod:`scratchnet.initializers`), in both dtypes: the bounds and spreads, zero biases of the dtype."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchnet.initializers import INITIALIZERS

FAN_IN, FAN_OUT = 300, 200


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_xavier_uniform_fills_its_bound(dtype):
    w, b = INITIALIZERS["xavier_uniform"](np.random.default_rng(0), FAN_IN, FAN_OUT, dtype=np.dtype(dtype))
    bound = math.sqrt(6.0 / (FAN_IN + FAN_OUT))
    assert w.shape == (FAN_OUT, FAN_IN) and w.dtype == dtype
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound   # 60 000 draws reach the edge
    assert b.dtype == dtype and b.shape == (FAN_OUT,) and not b.any()


@pytest.mark.parametrize("name, std", [("kaiming_normal", math.sqrt(2.0 / FAN_IN)),
                                       ("xavier_normal", math.sqrt(2.0 / (FAN_IN + FAN_OUT)))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_initialisers_have_the_documented_spread(name, std, dtype):
    w, b = INITIALIZERS[name](np.random.default_rng(1), FAN_IN, FAN_OUT, dtype=np.dtype(dtype))
    assert w.dtype == dtype and abs(float(w.std()) / std - 1) < 0.02   # 60 000 draws: ~0.3 % spread
    assert abs(float(w.mean())) < 0.02 * std
    assert b.dtype == dtype and b.shape == (FAN_OUT,) and not b.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zeros_are_zero_in_the_dtype(dtype):
    w, b = INITIALIZERS["zeros"](np.random.default_rng(2), 3, 4, dtype=np.dtype(dtype))
    assert w.shape == (4, 3) and w.dtype == dtype and not w.any()
    assert b.shape == (4,) and b.dtype == dtype and not b.any()
