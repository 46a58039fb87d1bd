"""The boundaries of compare.py's verdicts, pinned on exact values (found unpinned by mutation testing,
reports/mutation/): the finite-difference verdict passes a side at ``tol_ratio ≤ 1`` (inclusive), and the
modular path's precision rules fire at ``p ≤ tiny``, ``1 − p ≤ 4ε`` (inclusive), ``p(1 − p) < 1e-12``
(exclusive) and ``1 − p < ε/rtol`` of the judged dtype."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.core.compare import (
    CONDITIONING_FACTOR,
    _fd_verdict,
    _modular_conditioning,
    _modular_precision_loss,
)
from scratchnet_reference.core.tolerances import FD_TOLERANCES

from scratchnet import ModelSpec

# -- the finite-difference verdict ------------------------------------------------------------------

FD64 = FD_TOLERANCES["float64"]  # rtol 1e-5, atol 1e-6


@pytest.mark.parametrize("impl_err, torch_err, verdict", [
    (0.0, 0.0, "both"),
    (1e-6, 0.0, "both"),        # exactly on the boundary: |a − fd| = atol, tol_ratio = 1 → agrees
    (1e-6, 2e-6, "impl"),
    (2e-6, 1e-6, "torch"),
    (3e-6, 2e-6, "neither"),
])
def test_fd_verdict_counts_a_tol_ratio_of_exactly_one_as_agreement(impl_err, torch_err, verdict):
    fd = np.zeros(3)  # |fd| < 1: atol = 1e-6 and rtol·|fd| = 0, so tol_ratio = err / 1e-6 exactly
    actual, expected = fd.copy(), fd.copy()
    actual[1], expected[2] = impl_err, torch_err
    assert _fd_verdict(fd, actual, expected, "float64") == verdict


def test_fd_verdict_scales_the_absolute_floor_with_the_differences_magnitude():
    """fd = 4: atol_eff = 1e-6·4, rtol·|fd| = 4e-5, so an error of 4.3e-5 is inside (ratio 0.98); without
    the scaling the floor would be 1e-6 and the ratio 1.05."""
    fd = np.array([4.0, -0.5])
    inside = fd + np.array([4.3e-5, 0.0])
    outside = fd + np.array([4.6e-5, 0.0])
    assert _fd_verdict(fd, inside, outside, "float64") == "impl"
    assert _fd_verdict(fd, outside, inside, "float64") == "torch"


def test_fd_verdict_uses_the_dtypes_fd_tolerance():
    fd = np.zeros(2)
    off = np.array([0.0, 5e-5])  # inside float32's FD tolerance (atol 1e-4), outside float64's (1e-6)
    assert _fd_verdict(fd, off, fd.copy(), "float32") == "both"
    assert _fd_verdict(fd, off, fd.copy(), "float64") == "torch"


def test_fd_verdict_of_infinite_differences_is_neither():
    fd = np.array([np.inf, 0.0])
    assert _fd_verdict(fd, fd.copy(), fd.copy(), "float64") == "neither"


# -- torch's modular path: where its arithmetic cannot be trusted -----------------------------------

def spec(loss: str, dtype: str = "float64") -> ModelSpec:
    output = "softmax" if loss in ("cross_entropy", "mse") else "sigmoid"
    return ModelSpec((2, 2), hidden=(), output=output, loss=loss, dtype=dtype)


def column(*values: float, dtype=np.float64) -> np.ndarray:
    return np.array(values, dtype=dtype)[:, None]


EPS, TINY = np.finfo(np.float64).eps, np.finfo(np.float64).tiny


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_a_probability_at_tiny_or_within_four_ulp_of_one_is_saturated(loss):
    for p in (TINY, 0.0, 1 - 4 * EPS, 1 - EPS, 1.0):  # 1 − (1 − 4ε) is 4ε exactly
        assert _modular_precision_loss(spec(loss), column(0.5, p)).startswith("torch's modular path saturated"), p


def test_a_probability_just_inside_the_saturation_bounds_is_not_saturated():
    # cross-entropy has no BCE clamp or digits rule: only the saturation test applies
    for p in (2 * TINY, 1 - 5 * EPS, 0.5):
        assert _modular_precision_loss(spec("cross_entropy"), column(0.5, p)) == "", p


def test_float32_saturation_uses_float32s_epsilon():
    eps32 = np.finfo(np.float32).eps
    p = np.float32(1) - np.float32(4) * eps32
    assert _modular_precision_loss(spec("cross_entropy", "float32"), column(0.5, p, dtype=np.float32))
    p = np.float32(1) - np.float32(5) * eps32
    assert _modular_precision_loss(spec("cross_entropy", "float32"), column(0.5, p, dtype=np.float32)) == ""


@pytest.mark.parametrize("loss", ["mse", "l1"])
def test_losses_without_a_log_never_lose_precision(loss):
    assert _modular_precision_loss(spec(loss), column(0.0, 1.0, TINY)) == ""


def test_bce_clamp_fires_strictly_below_1e_minus_12():
    """``p(1 − p) < 1e-12``: at p = 1.000000000001e-12 the product is 1e-12 exactly (not clamped), at
    p = 1e-12 it is just below (clamped)."""
    at = 1.000000000001e-12
    assert at * (1 - at) == 1e-12
    assert _modular_precision_loss(spec("binary_cross_entropy"), column(0.5, at)) == ""
    below = _modular_precision_loss(spec("binary_cross_entropy"), column(0.5, 1e-12))
    assert below.startswith("torch's BCE clamps are active")
    assert _modular_precision_loss(spec("binary_cross_entropy"), column(0.5, 1 - 1e-13)).startswith(
        "torch's BCE clamps are active")


def test_bce_digits_rule_uses_the_judged_dtypes_gradient_rtol():
    """1 − p = 1e-8 in float64: p(1 − p) keeps 8 digits — too few for float64's gradient rtol 1e-10
    (bound ε/rtol = 2.2e-6), enough for float32's 1e-5 (bound 2.2e-11)."""
    p = column(0.5, 1 - 1e-8)
    lost = _modular_precision_loss(spec("binary_cross_entropy"), p)
    assert lost.startswith("torch's modular BCE lost precision: 1 − p < 2.2e-06")
    assert lost.endswith("above the gradient rtol 1e-10")
    assert _modular_precision_loss(spec("binary_cross_entropy"), p, judged_dtype="float32") == ""
    assert _modular_precision_loss(spec("binary_cross_entropy"), column(0.5, 1 - 1e-5)) == ""


# -- the modular BCE's own conditioning (how far the stable oracle may be from a right answer) --------

def test_modular_conditioning_is_zero_outside_float64_bce():
    p = np.array([[0.5, 0.99, 0.3]])
    assert _modular_conditioning(spec("cross_entropy"), p) == 0.0
    assert _modular_conditioning(spec("binary_cross_entropy", "float32"), p.astype(np.float32)) == 0.0


def test_modular_conditioning_is_factor_times_classes_times_eps_over_the_smallest_unclamped_q():
    """``CONDITIONING_FACTOR·C·ε/min(1 − p)`` over the elements outside torch's ``p(1 − p) < 1e-12`` clamp:
    here C = 3 (not the 2 rows) and the clamped 1 − 1e-13 is left out, so min(1 − p) = 0.01."""
    p = np.array([[0.5, 0.99, 0.3], [1 - 1e-13, 0.2, 0.6]])
    expected = CONDITIONING_FACTOR * 3 * float(EPS / (1 - 0.99))
    assert _modular_conditioning(spec("binary_cross_entropy"), p) == expected
    # float32 probabilities of a float64 comparison are read in float64
    p32 = np.array([[0.5, 0.75]], dtype=np.float32)
    assert _modular_conditioning(spec("binary_cross_entropy"), p32) == CONDITIONING_FACTOR * 2 * float(EPS / 0.25)


def test_modular_conditioning_keeps_an_element_exactly_at_the_clamp():
    """``p(1 − p) ≥ 1e-12`` is kept (torch's clamp is strict): at p = 1.000000000001e-12 the product is
    1e-12 exactly, so its 1 − p joins the minimum — with a p near 1 at the same product it would be
    the minimum; here the near-0 one contributes 1 − p ≈ 1 and the 0.5 gives the minimum."""
    at = 1.000000000001e-12
    p = np.array([[at, 0.5]])
    assert _modular_conditioning(spec("binary_cross_entropy"), p) == CONDITIONING_FACTOR * 2 * float(EPS / 0.5)
    only = np.array([[at]])
    assert _modular_conditioning(spec("binary_cross_entropy"), only) == CONDITIONING_FACTOR * 1 * float(EPS / (1 - at))


def test_modular_conditioning_is_zero_when_every_element_is_clamped():
    assert _modular_conditioning(spec("binary_cross_entropy"), np.array([[1e-13, 1 - 1e-13]])) == 0.0


def test_modular_conditioning_of_a_scalar_counts_one_class():
    assert _modular_conditioning(spec("binary_cross_entropy"), np.float64(0.9)) == \
        CONDITIONING_FACTOR * 1 * float(EPS / (1 - 0.9))
