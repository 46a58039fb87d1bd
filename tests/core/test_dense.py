"""``scratchnet.layers.Dense`` called directly, as its docstrings promise: ``z``, ``a`` and ``∂L/∂x``
live in work arrays kept per batch size, and ``backward_from_z`` returns ``∂L/∂x = δW`` unless told
it is not needed."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet import registry
from scratchnet.layers import Dense


def layer(input_grad=True):
    rng = np.random.default_rng(4)
    return Dense(rng.normal(size=(3, 5)), rng.normal(size=3), registry.make_activation("tanh"),
                 input_grad=input_grad)


def test_forward_writes_z_and_a_into_arrays_kept_per_batch_size():
    """The caches ``z`` and ``a`` of the last pass are the layer's work arrays: a second pass of the
    same batch size overwrites the same arrays (the documented "valid until the next pass"), a new
    batch size gets new ones."""
    dense = layer()
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    dense.forward(x1)
    z, a = dense.z, dense.a
    returned = dense.forward(x2)
    assert dense.z is z and dense.a is a and returned is a
    np.testing.assert_allclose(z, x2 @ dense.weight.T + dense.bias, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(a, np.tanh(z))
    dense.forward(rng.normal(size=(2, 5)))
    assert dense.z is not z and dense.z.shape == (2, 3)


@pytest.mark.parametrize("input_grad", [True, False], ids=["row-major", "column-major"])
def test_backward_from_z_returns_the_input_gradient_by_default(input_grad):
    """``backward_from_z(δ)`` fills ``∂L/∂W = δᵀx``, ``∂L/∂b = Σ δ`` and returns ``∂L/∂x = δW``;
    ``need_input_grad=False`` skips the last (returns None), the gradients unchanged."""
    dense = layer(input_grad)
    rng = np.random.default_rng(2)
    x, delta = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    dense.forward(x)
    dx = dense.backward_from_z(delta)
    assert dx is not None
    np.testing.assert_allclose(dx, delta @ dense.weight, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dense.grad_weight, delta.T @ x, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dense.grad_bias, delta.sum(axis=0), rtol=1e-13, atol=1e-13)
    assert dense.backward_from_z(delta, need_input_grad=False) is None
    np.testing.assert_allclose(dense.grad_weight, delta.T @ x, rtol=1e-13, atol=1e-13)
