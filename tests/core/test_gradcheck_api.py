"""scratchnet.gradcheck's public functions, pinned where mutation testing found them unpinned
(reports/mutation/): ``network_numerical_gradients`` returns the central differences of the loss for
every parameter, ``assert_gradients_close`` names the failing checks from a list or a mapping,
``numerical_vjp``'s step, dtype and evaluation count, a ``GradientCheck``'s one-line verdict."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet import ModelSpec, Network
from scratchnet.gradcheck import (
    assert_gradients_close,
    check_network_gradients,
    compare_arrays,
    network_numerical_gradients,
    numerical_vjp,
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


def test_numerical_vjp_step_is_eps_times_max_one_abs_z():
    """The central difference of ``z³`` with step ``h`` is exactly ``3z² + h²``: the ``h²`` term reads the
    step, ``h = eps·max(1, |z|)`` — absolute below |z| = 1, relative above it."""
    z = np.array([[-0.5, 0.25, 0.0, 3.0, -40.0, 1e3]])
    g = np.array([[1.5, -2.0, 0.5, 1.0, -0.75, 2.0]])
    eps = 1e-3
    h = eps * np.maximum(1.0, np.abs(z))
    for rowwise in (False, True):
        got = numerical_vjp(lambda v: v**3, z, g, eps=eps, rowwise=rowwise)
        np.testing.assert_allclose(got, g * (3 * z**2 + h**2), rtol=1e-9, atol=1e-15, err_msg=f"rowwise={rowwise}")


@pytest.mark.parametrize("dtype", [np.int64, np.float32])
def test_numerical_vjp_differentiates_integer_and_float32_inputs_in_float64(dtype):
    """Integer ``z`` is not stepped in integers (a zero step), float32 ``z`` not in float32 (a 1e-6 step
    rounds away): both are read as float64, and so is the result."""
    z = np.array([[-2, 0, 1], [3, 5, -1]], dtype=dtype)
    g = np.array([[0.5, -1.0, 2.0], [1.0, 0.25, -0.5]])
    got = numerical_vjp(np.sin, z, g)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, g * np.cos(z.astype(np.float64)), rtol=1e-8, atol=1e-10)


def test_numerical_vjp_of_an_elementwise_function_evaluates_it_twice():
    """By default every element is stepped at once (two evaluations of ``f``); ``rowwise=True`` steps one
    column at a time (two per column) — the same differences for an elementwise ``f``."""
    calls = []

    def f(v):
        calls.append(v.shape)
        return np.tanh(v)

    z = np.random.default_rng(3).normal(size=(4, 5))
    g = np.random.default_rng(4).normal(size=(4, 5))
    at_once = numerical_vjp(f, z, g)
    assert len(calls) == 2
    calls.clear()
    by_column = numerical_vjp(f, z, g, rowwise=True)
    assert len(calls) == 2 * 5
    np.testing.assert_array_equal(at_once, by_column)


def test_gradient_check_str_is_one_line_with_the_verdict_and_the_numbers():
    ok = compare_arrays("layers.0.weight", np.array([1.0, 2.5]), np.array([1.0, 2.0]), rtol=0.5, atol=0.0)
    wrong = compare_arrays("layers.0.bias", np.array([1.0, 2.5]), np.array([1.0, 2.0]), rtol=0.1, atol=0.0)
    assert ok.passed and not wrong.passed
    assert str(ok) == "layers.0.weight: ok tol_ratio=0.5 max_abs_err=0.5 max_rel_err=0.25 worst at (1,)"
    assert str(wrong) == "layers.0.bias: WRONG tol_ratio=2.5 max_abs_err=0.5 max_rel_err=0.25 worst at (1,)"


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
