"""scratchnet.gradcheck's public functions, pinned where mutation testing found them unpinned
(reports/mutation/): ``network_numerical_gradients`` returns the central differences of the loss for
every parameter, ``assert_gradients_close`` names the failing checks from a list or a mapping."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet import ModelSpec, Network
from scratchnet.gradcheck import (
    assert_gradients_close,
    check_network_gradients,
    compare_arrays,
    network_numerical_gradients,
)


def small_case():
    net = Network(ModelSpec((3, 4, 2), hidden="tanh", output="softmax", loss="cross_entropy", seed=7))
    rng = np.random.default_rng(0)
    return net, rng.normal(size=(5, 3)), rng.integers(0, 2, 5)


def test_network_numerical_gradients_are_the_backprop_gradients():
    net, x, y = small_case()
    _, analytic = net.loss_and_grads(x, y)
    numeric = network_numerical_gradients(net, x, y)
    assert set(numeric) == set(analytic) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}
    for name, grad in analytic.items():
        assert numeric[name].shape == grad.shape and numeric[name].dtype == np.float64
        np.testing.assert_allclose(numeric[name], grad, rtol=1e-7, atol=1e-10, err_msg=name)


def test_network_numerical_gradients_step_is_eps():
    """A huge step shows in the differences of a curved loss (the default 1e-6 does not)."""
    net, x, y = small_case()
    _, analytic = net.loss_and_grads(x, y)
    coarse = network_numerical_gradients(net, x, y, eps=0.5)
    assert max(float(np.abs(coarse[k] - analytic[k]).max()) for k in analytic) > 1e-4


def test_assert_gradients_close_names_every_failure_from_a_list_or_a_mapping():
    good = compare_arrays("w", np.ones(2), np.ones(2), rtol=0, atol=0)
    bad = compare_arrays("b", np.ones(2), np.array([1.0, 3.0]), rtol=0, atol=0)
    assert_gradients_close([good])
    assert_gradients_close({"w": good})
    for checks in ([good, bad], {"w": good, "b": bad}):
        with pytest.raises(AssertionError) as info:
            assert_gradients_close(checks)
        assert str(info.value).startswith("gradient mismatch:\n  b") and "w:" not in str(info.value)


def test_check_network_gradients_passes_a_correct_network():
    net, x, y = small_case()
    checks = check_network_gradients(net, x, y)
    assert len(checks) == 4 and all(c.passed for c in checks)


def test_check_network_gradients_scales_atol_by_the_loss():
    """``atol`` is scaled by ``max(1, |L|, max |∂L/∂θ|)``: a loss of ~10⁴ (targets 100 from inputs
    of 10⁻³) with gradients far smaller still gets an absolute floor of ``atol·|L|`` for each
    parameter — the rounding error of the two loss values each difference quotient subtracts."""
    net = Network(ModelSpec((3, 1), output="identity", loss="mse", seed=2))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)) * 1e-3, np.full((4, 1), 100.0)
    value, grads = net.loss_and_grads(x, y)
    assert value > 1e3 > max(float(np.abs(g).max()) for g in grads.values())
    checks = check_network_gradients(net, x, y, atol=1e-3)
    assert len(checks) == 2 and all(c.passed for c in checks), [str(c) for c in checks]
    for check in checks:
        assert check.atol >= 1e-3 * value, (check.name, check.atol, value)
