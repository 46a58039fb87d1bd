"""Every fused (output, loss) pair: value from the logits against a plain-math reference and the
unfused composition, ``∂L/∂z`` against float64 central differences and the composition, and
for DESIGN.md's canonical pairs against ``p·Σy − y``."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import ModelSpec, registry
from scratchnet.fused import FUSED_PAIRS, fused_loss_and_grad
from scratchnet.gradcheck import numerical_gradient
from scratchnet.losses import REDUCTIONS

from .helpers import (
    CANONICAL_PAIRS,
    FUSED_REFERENCE,
    assert_fd_close,
    dense_smoothed,
    fused_reference_gradient,
    fused_reference_value,
    loss_specs,
    matrices,
    pair_id,
    probabilities,
    shapes,
    spec_id,
    targets,
)

PAIRS = list(FUSED_PAIRS)
CASES = [(out, spec) for out, loss in PAIRS for spec in loss_specs([loss])]
CANONICAL_CASES = [case for case in CASES if (case[0], case[1]["name"]) in CANONICAL_PAIRS]


def _case_id(case):
    return f"{case[0]}+{spec_id(case[1])}"


def draw_case(data, out, spec, reduction, lo=-8.0, hi=8.0):
    act, loss = registry.make_activation(out), registry.make_loss(spec, reduction)
    n, c = data.draw(shapes(max_cols=6))
    z = data.draw(matrices((n, c), lo, hi))
    target = loss.prepare_target(data.draw(targets(loss, n, c)), c, np.dtype(np.float64))
    return act, loss, z, target


# -- the registry ---------------------------------------------------------------------------------

def test_fused_pairs_are_valid_registered_pairs():
    assert PAIRS
    for out, loss in PAIRS:
        registry.check_pair(out, loss)
        assert registry.is_fused(out, loss)


def test_every_fused_pair_has_a_reference():
    missing = [p for p in PAIRS if p not in FUSED_REFERENCE]
    assert not missing, f"add a plain-math reference for {missing}"


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_model_spec_marks_fused_pairs(pair):
    assert ModelSpec((3, 2), output=pair[0], loss=pair[1]).fused


# -- value -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@given(data=st.data())
def test_value_matches_reference_and_composition(case, reduction, data):
    out, spec = case
    act, loss, z, target = draw_case(data, out, spec, reduction)
    a = act.forward(z)
    value, _ = fused_loss_and_grad(out, loss, z, a, target)
    expected = fused_reference_value((out, loss.name), loss, z, target)
    assert math.isclose(float(value), expected, rel_tol=1e-12, abs_tol=1e-12)
    # at moderate logits the unfused composition is accurate too
    assert math.isclose(float(value), float(loss.value(a, target)), rel_tol=1e-10, abs_tol=1e-12)


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@given(data=st.data())
def test_reference_gradient_matches_central_differences(pair, data):
    """The oracle's own gradient formula has teeth: it matches differences of its value."""
    out, name = pair
    act, loss, z, target = draw_case(data, out, {"name": name}, "sum")
    numeric = numerical_gradient(lambda: fused_reference_value(pair, loss, z, target), z)
    assert_fd_close(f"reference {pair_id(pair)}", fused_reference_gradient(pair, loss, z, target), numeric,
                    magnitude=abs(fused_reference_value(pair, loss, z, target)))


# -- gradient ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@given(data=st.data())
def test_gradient_matches_central_differences(case, reduction, data):
    out, spec = case
    act, loss, z, target = draw_case(data, out, spec, reduction)
    value, grad = fused_loss_and_grad(out, loss, z, act.forward(z), target)
    numeric = numerical_gradient(lambda: float(fused_loss_and_grad(out, loss, z, act.forward(z), target)[0]), z)
    assert_fd_close(f"fused {_case_id(case)}({reduction})", grad, numeric, magnitude=abs(float(value)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@given(data=st.data())
def test_gradient_equals_the_composition(case, reduction, data):
    """At moderate logits the unfused chain rule ``f'ᵀ ∂L/∂a`` agrees with the fused gradient."""
    out, spec = case
    act, loss, z, target = draw_case(data, out, spec, reduction)
    a = act.forward(z)
    _, grad = fused_loss_and_grad(out, loss, z, a, target)
    np.testing.assert_allclose(grad, act.backward(z, a, loss.gradient(a, target)), rtol=1e-8, atol=1e-12)


def test_canonical_pairs_are_fused():
    assert set(CANONICAL_PAIRS) <= set(PAIRS)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CANONICAL_CASES, ids=_case_id)
@given(data=st.data())
def test_canonical_gradient_is_p_minus_y(case, reduction, data):
    out, spec = case
    act, loss, z, target = draw_case(data, out, spec, reduction)
    a = act.forward(z)
    _, grad = fused_loss_and_grad(out, loss, z, a, target)
    y = dense_smoothed(loss, target, z.shape[1])
    p = probabilities(act, a)
    expected = (p * y.sum(axis=1, keepdims=True) - y) if act.rowwise else (p - y)
    np.testing.assert_allclose(grad, expected / loss.divisor(z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("pair", CANONICAL_PAIRS, ids=pair_id)
def test_canonical_gradient_is_exactly_p_minus_y_for_one_hot_targets(pair):
    out, name = pair
    act, loss = registry.make_activation(out), registry.make_loss(name, "sum")
    z = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]])
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    a = act.forward(z)
    _, grad = fused_loss_and_grad(out, loss, z, a, loss.prepare_target(y, 3, np.dtype(np.float64)))
    np.testing.assert_array_equal(grad, probabilities(act, a) - y)
