"""Extreme logits (|z| up to 1e4) in float32 and float64: every activation and every fused pair
stays warning-free, NaN-free and finite where the true value is finite; fused losses and
gradients stay correct."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import ModelSpec, Network, registry
from scratchnet.fused import FUSED_PAIRS, fused_loss_and_grad

from .helpers import (
    CANONICAL_PAIRS,
    DTYPES,
    activation_specs,
    fused_reference_gradient,
    fused_reference_value,
    matrices,
    pair_id,
    probabilities,
    shapes,
    spec_id,
    upstream,
)

EXTREMES = [-1e4, -1e3, -750.0, -100.0, -88.0, -20.0, -1.0, -1e-30, 0.0, 1e-30, 1.0, 20.0, 88.0, 100.0,
            750.0, 1e3, 1e4]
# Rows mixing extremes: huge gaps between logits are where a naive log(softmax) dies.
EXTREME_ROWS = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4], [0.0, -1e4, 1e3],
                         [-750.0, 750.0, -88.0], [100.0, -100.0, 20.0], [-1e4, -1e3, -1e4]])
ALL_SPECS = activation_specs()


def check_activation(act, z):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = act.forward(z)
        g = upstream(z.shape, z.dtype)
        grad = act.backward(z, a, g)
        fast_a = act.forward_into(z, np.empty_like(z))
        fast_grad = act.backward_into(z, a, g.copy(), np.empty_like(z))
    for name, arr in (("forward", a), ("backward", grad), ("forward_into", fast_a), ("backward_into", fast_grad)):
        assert arr.dtype == z.dtype, f"{act!r} {name} returned {arr.dtype} for {z.dtype}"
        # every activation is finite (with a finite derivative) on finite input
        assert np.all(np.isfinite(arr)), f"{act!r} {name} not finite at {z[~np.isfinite(arr)]}"
    return a, grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_activation_on_extreme_grid(spec, dtype):
    act = registry.make_activation(spec)
    check_activation(act, np.array([EXTREMES], dtype=dtype))
    check_activation(act, EXTREME_ROWS.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
@given(data=st.data())
def test_activation_on_random_extremes(spec, dtype, data):
    act = registry.make_activation(spec)
    z = data.draw(matrices(data.draw(shapes()), -1e4, 1e4, dtype))
    check_activation(act, z)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_float32_extremes_agree_with_float64(spec):
    """Rounding the input to float32 changes nothing but the last bits of the answer."""
    act = registry.make_activation(spec)
    z32 = EXTREME_ROWS.astype(np.float32)
    a32, g32 = check_activation(act, z32)
    a64, g64 = check_activation(act, z32.astype(np.float64))
    # σ'(z) = σ(1 − σ) from the rounded output is 0 in float32 at z = 20 (true 2e-9), as torch's:
    # agreement is to float32's resolution, not relative in the far tails
    np.testing.assert_allclose(a32, a64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-6)


def test_known_values_at_extremes():
    z = np.array([[-1e4, 1e4]], dtype=np.float32)
    f = {name: registry.make_activation(name).forward(z)[0] for name in registry.ACTIVATIONS}
    assert list(f["sigmoid"]) == [0.0, 1.0]
    assert list(f["softplus"]) == [0.0, 1e4]
    assert list(f["gelu"]) == [0.0, 1e4] and list(f["silu"]) == [0.0, 1e4]
    assert list(f["elu"]) == [-1.0, 1e4] and list(f["tanh"]) == [-1.0, 1.0]
    assert list(f["softmax"]) == [0.0, 1.0] and list(f["log_softmax"]) == [-2e4, 0.0]


# -- fused pairs -------------------------------------------------------------------------------

PAIRS = list(FUSED_PAIRS)


def fused(pair, z, y, reduction="mean"):
    act, loss = registry.make_activation(pair[0]), registry.make_loss(pair[1], reduction)
    target = loss.prepare_target(y, z.shape[1], z.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = act.forward(z)
        value, grad = fused_loss_and_grad(pair[0], loss, z, a, target)
    return act, loss, a, target, value, grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@pytest.mark.parametrize("kind", ["labels", "one_hot", "soft"])
def test_fused_pair_on_extreme_logits(pair, dtype, kind):
    z = EXTREME_ROWS.astype(dtype)
    n, c = z.shape
    labels = np.arange(n) % c
    y = {"labels": labels, "one_hot": np.eye(c)[labels],
         "soft": np.full((n, c), 1 / c)}[kind]
    act, loss, a, target, value, grad = fused(pair, z, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.asarray(value).dtype == dtype and grad.dtype == dtype
    # the value against plain-math log-sum-exp / softplus from the same (rounded) logits
    expected = fused_reference_value(pair, loss, z.astype(np.float64), target)
    assert math.isclose(float(value), expected, rel_tol=1e-6 if dtype == np.float32 else 1e-12)
    # the gradient against central differences of that reference (steps follow |z|)
    np.testing.assert_allclose(grad, fused_reference_gradient(pair, loss, z, target),
                               rtol=1e-5 if dtype == np.float32 else 1e-8, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", CANONICAL_PAIRS, ids=pair_id)
def test_canonical_gradient_is_p_minus_y_on_extreme_logits(pair, dtype):
    z = EXTREME_ROWS.astype(dtype)
    n, c = z.shape
    y = np.eye(c, dtype=dtype)[np.arange(n) % c]
    act, loss, a, target, value, grad = fused(pair, z, y)
    np.testing.assert_array_equal(grad, (probabilities(act, a) - y) * (1.0 / loss.divisor(z)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", [p for p in CANONICAL_PAIRS if registry.ACTIVATIONS[p[0]].rowwise], ids=pair_id)
def test_softmax_family_at_plus_minus_1e4(pair, dtype):
    """logits [1e4, −1e4]: the loss is exactly 0 or 2e4 and the gradient exactly p − y."""
    z = np.array([[1e4, -1e4], [1e4, -1e4]], dtype=dtype)
    act, loss, a, target, value, grad = fused(pair, z, np.array([0, 1]), reduction="sum")
    assert value == dtype(2e4)
    np.testing.assert_array_equal(grad, np.array([[0.0, 0.0], [1.0, -1.0]], dtype=dtype))
    _, _, _, _, value0, _ = fused(pair, z[:1], np.array([0]))
    assert value0 == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", [p for p in CANONICAL_PAIRS if not registry.ACTIVATIONS[p[0]].rowwise], ids=pair_id)
def test_sigmoid_family_at_plus_minus_1e4(pair, dtype):
    z = np.array([[1e4, -1e4, 1e4, -1e4]], dtype=dtype)
    y = np.array([[0.0, 1.0, 1.0, 0.0]])
    act, loss, a, target, value, grad = fused(pair, z, y, reduction="sum")
    assert value == dtype(2e4)                           # 1e4 + 1e4 + 0 + 0
    np.testing.assert_array_equal(grad, np.array([[1.0, -1.0, 0.0, 0.0]], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@given(data=st.data())
def test_fused_pair_on_random_extremes(pair, dtype, data):
    act, loss = registry.make_activation(pair[0]), registry.make_loss(pair[1])
    n, c = data.draw(shapes(min_cols=2))
    z = data.draw(matrices((n, c), -1e4, 1e4, dtype))
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    y = labels if loss.per_sample else np.eye(c)[labels]
    act, loss, a, target, value, grad = fused(pair, z, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    expected = fused_reference_value(pair, loss, z.astype(np.float64), target)
    assert math.isclose(float(value), expected, rel_tol=1e-5 if dtype == np.float32 else 1e-12, abs_tol=1e-6)
    np.testing.assert_allclose(grad, fused_reference_gradient(pair, loss, z, target),
                               rtol=1e-5 if dtype == np.float32 else 1e-8, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_network_with_fused_pair_survives_huge_logits(pair, dtype):
    """A whole network driven to |z| ~ 1e4: finite loss and gradients, no warnings."""
    net = Network(ModelSpec((2, 3), output=pair[0], loss=pair[1], dtype=dtype, init="zeros"))
    net.load_state_dict({"layers.0.weight": np.array([[1e4, 0], [-1e4, 0], [0, 1e4]]),
                         "layers.0.bias": np.zeros(3)})
    x = np.array([[1.0, 0.0], [-1.0, 1.0]])
    y = np.array([1, 0]) if net.loss_fn.per_sample else np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grads = net.loss_and_grads(x, y)
    assert np.isfinite(value) and value > 1e3
    assert all(np.all(np.isfinite(g)) and g.dtype == np.dtype(dtype) for g in grads.values())
