"""Every registered activation: forward against its formula, backward against float64 central
differences (away from kinks), torch's subgradient at each exact kink, dtypes and purity."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import registry
from scratchnet.activations import sigmoid
from scratchnet.gradcheck import numerical_vjp

from .helpers import (
    ACTIVATION_VARIANTS,
    DTYPES,
    activation_specs,
    assert_fd_close,
    away_from_kinks,
    matrices,
    min_kink_distance,
    shapes,
    spec_id,
    upstream,
    upstreams,
)

SPECS = activation_specs()


# -- reference formulas, one scalar (or row) function per registry entry, in plain math ---------

def _softplus(act, z):
    bz = act.beta * z
    return z if bz > act.threshold else math.log1p(math.exp(bz)) / act.beta


def _gelu(act, z):
    if act.approximate == "tanh":
        return 0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    return z * 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _softmax_row(act, row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def _log_softmax_row(act, row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


ELEMENTWISE_REFERENCE = {
    "identity": lambda act, z: z,
    "sigmoid": lambda act, z: 1 / (1 + math.exp(-z)),
    "tanh": lambda act, z: math.tanh(z),
    "relu": lambda act, z: max(z, 0.0),
    "leaky_relu": lambda act, z: z if z > 0 else act.negative_slope * z,
    "elu": lambda act, z: z if z > 0 else act.alpha * math.expm1(z),
    "softplus": _softplus,
    "gelu": _gelu,
    "silu": lambda act, z: z / (1 + math.exp(-z)),
}
ROWWISE_REFERENCE = {"softmax": _softmax_row, "log_softmax": _log_softmax_row}

#: torch's derivative at an exact kink ``k`` (aten's backward kernels: relu ``z <= 0 → 0``,
#: leaky_relu ``z > 0 ? g : g·slope``, elu ``z <= 0 → α·exp(z)``, softplus ``βz > threshold ?
#: g : g·σ(βz)``).
TORCH_KINK_SLOPE = {
    "relu": lambda act, k: 0.0,
    "leaky_relu": lambda act, k: act.negative_slope,
    "elu": lambda act, k: act.alpha,
    "softplus": lambda act, k: 1 / (1 + math.exp(-act.beta * k)),
}


def reference_forward(act, z: np.ndarray) -> np.ndarray:
    if act.rowwise:
        return np.array([ROWWISE_REFERENCE[act.name](act, [float(v) for v in row]) for row in z])
    f = ELEMENTWISE_REFERENCE[act.name]
    return np.vectorize(lambda v: f(act, float(v)), otypes=[float])(z)


# -- the registry is fully covered --------------------------------------------------------------

def test_every_activation_has_a_reference_formula():
    missing = [n for n in registry.ACTIVATIONS if n not in ELEMENTWISE_REFERENCE | ROWWISE_REFERENCE]
    assert not missing, f"add a reference formula for {missing}"


def test_every_kinked_activation_states_its_torch_subgradient():
    kinked = [s for s in SPECS if registry.make_activation(s).kinks]
    missing = sorted({s["name"] for s in kinked} - set(TORCH_KINK_SLOPE))
    assert kinked and not missing, f"add torch's derivative at the kink for {missing}"


def test_variants_name_registered_activations():
    assert set(ACTIVATION_VARIANTS) <= set(registry.ACTIVATIONS)
    for spec in SPECS:
        assert registry.make_activation(spec).params.items() >= {k: v for k, v in spec.items()
                                                                if k != "name"}.items()


# -- forward ------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@given(data=st.data())
def test_forward_matches_formula(spec, data):
    act = registry.make_activation(spec)
    z = data.draw(matrices(data.draw(shapes()), -20.0, 20.0))
    z = away_from_kinks(z, act.kinks)   # softplus jumps at its threshold, like torch's
    # GELU's ½(1 + erf) cancels for z ≪ 0, amplifying erf's last-ulp differences to ~1e-10
    # relative; log-softmax's log Σ exp is a sum near 1 rounded (as torch's), ~1e-15 absolute
    np.testing.assert_allclose(act.forward(z), reference_forward(act, z), rtol=1e-9, atol=1e-13)


# -- backward: central differences in float64 --------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@given(data=st.data())
def test_backward_matches_central_differences(spec, data):
    act = registry.make_activation(spec)
    shape = data.draw(shapes(max_cols=6))
    z = away_from_kinks(data.draw(matrices(shape, -6.0, 6.0)), act.kinks)
    g = data.draw(upstreams(shape))
    analytic = act.backward(z, act.forward(z), g)
    numeric = numerical_vjp(act.forward, z, g, rowwise=act.rowwise)
    row_magnitude = np.abs(g * act.forward(z)).sum(axis=1).max() if act.rowwise else 0.0
    assert_fd_close(f"activation {spec_id(spec)}", analytic, numeric, magnitude=row_magnitude)


# -- the in-place twins (the training hot path): the same functions, checked the same way ---------

@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@given(data=st.data())
def test_forward_into_matches_formula(spec, data):
    """``forward_into(z, out)`` — what :class:`scratchnet.layers.Dense` calls — against the formula
    (``out`` starts as NaN, so an element it forgets to write shows)."""
    act = registry.make_activation(spec)
    z = away_from_kinks(data.draw(matrices(data.draw(shapes()), -20.0, 20.0)), act.kinks)
    got = act.forward_into(z, np.full_like(z, np.nan))
    np.testing.assert_allclose(got, reference_forward(act, z), rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@pytest.mark.parametrize("out_is_grad", [False, True], ids=["fresh-out", "out-is-grad"])
@given(data=st.data())
def test_backward_into_matches_central_differences(spec, out_is_grad, data):
    """``backward_into(z, a, grad, out)`` with a drawn upstream, into a fresh array or over ``grad``
    itself (as :class:`~scratchnet.layers.Dense` calls it), against central differences."""
    act = registry.make_activation(spec)
    shape = data.draw(shapes(max_cols=6))
    z = away_from_kinks(data.draw(matrices(shape, -6.0, 6.0)), act.kinks)
    g = data.draw(upstreams(shape))
    work = g.copy()
    analytic = act.backward_into(z, act.forward(z), work, work if out_is_grad else np.full_like(g, np.nan))
    numeric = numerical_vjp(act.forward, z, g, rowwise=act.rowwise)
    row_magnitude = np.abs(g * act.forward(z)).sum(axis=1).max() if act.rowwise else 0.0
    assert_fd_close(f"activation {spec_id(spec)} backward_into", analytic, numeric, magnitude=row_magnitude)


def test_kink_margin_is_applied():
    act = registry.make_activation({"name": "softplus", "beta": 2.0, "threshold": 5.0})
    z = np.array([[2.5, 2.5000001, 2.4999, 0.0]])
    moved = away_from_kinks(z, act.kinks)
    assert min_kink_distance(moved, act.kinks) >= 1e-3
    assert moved[0, 3] == 0.0


# -- exact kinks: torch's subgradients ---------------------------------------------------------

KINKED = [s for s in SPECS if registry.make_activation(s).kinks]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", KINKED, ids=spec_id)
def test_exact_kink_subgradient_is_torchs(spec, dtype):
    act = registry.make_activation(spec)
    for k in act.kinks:
        z = np.full((2, 3), k, dtype=dtype)
        g = upstream(z.shape, dtype)
        expected = g * dtype(TORCH_KINK_SLOPE[act.name](act, k))
        for grad in (act.backward(z, act.forward(z), g), act.backward_into(z, act.forward(z), g.copy(), g.copy())):
            assert grad.dtype == dtype
            np.testing.assert_allclose(grad, expected, rtol=4 * np.finfo(dtype).eps, atol=0,
                                       err_msg=f"{act!r} at z={k}")


def test_named_kink_conventions():
    """The conventions in the words of the issue, spelled out once."""
    g = np.full((1, 1), -2.0)  # an upstream of 1 would not show a backward that ignores it
    zero = np.zeros((1, 1))
    relu = registry.make_activation("relu")
    assert relu.backward(zero, relu.forward(zero), g)[0, 0] == 0.0
    leaky = registry.make_activation({"name": "leaky_relu", "negative_slope": 0.2})
    assert leaky.backward(zero, leaky.forward(zero), g)[0, 0] == 0.2 * -2.0
    elu = registry.make_activation({"name": "elu", "alpha": 0.5})
    assert elu.backward(zero, elu.forward(zero), g)[0, 0] == 0.5 * -2.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_is_linear_past_its_threshold(dtype):
    act = registry.make_activation({"name": "softplus", "beta": 2.0, "threshold": 5.0})
    z = np.array([[2.5001, 3.0, 100.0, 1e4]], dtype=dtype)
    np.testing.assert_array_equal(act.forward(z), z)
    g = upstream(z.shape, dtype)
    np.testing.assert_array_equal(act.backward(z, act.forward(z), g), g)
    at = np.array([[2.5]], dtype=dtype)        # exactly βz = threshold: still the smooth branch
    g = np.array([[-1.5]], dtype=dtype)
    assert act.backward(at, act.forward(at), g)[0, 0] == dtype(sigmoid(np.array(5.0))) * g[0, 0]


# -- dtype, shape, purity ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_dtype_and_shape_are_preserved(spec, dtype):
    act = registry.make_activation(spec)
    z = np.linspace(-4, 4, 15, dtype=dtype).reshape(3, 5)
    a = act.forward(z)
    g = upstream(z.shape, dtype)
    grad = act.backward(z, a, g)
    assert a.dtype == dtype and a.shape == z.shape
    assert grad.dtype == dtype and grad.shape == z.shape
    fast_a = act.forward_into(z, np.empty_like(z))
    fast_grad = act.backward_into(z, a, g.copy(), np.empty_like(z))
    assert fast_a.dtype == dtype and fast_a.shape == z.shape
    assert fast_grad.dtype == dtype and fast_grad.shape == z.shape


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_forward_and_backward_leave_their_inputs_alone(spec):
    act = registry.make_activation(spec)
    z = np.linspace(-3, 3, 12).reshape(3, 4)
    g = np.linspace(1, 2, 12).reshape(3, 4)
    z0, g0 = z.copy(), g.copy()
    a = act.forward(z)
    a0 = a.copy()
    act.backward(z, a, g)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(g, g0)
    np.testing.assert_array_equal(a, a0)
    assert act.forward(z) is not z   # identity too returns a fresh array


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_spec_round_trips_through_the_registry(spec):
    act = registry.make_activation(spec)
    again = registry.make_activation(registry.normalize(spec, "activation"))
    assert again == act and hash(again) == hash(act) and repr(again) == repr(act)


# -- the in-place twins: bit for bit the allocating forms, written into the caller's buffer ---------

#: The activations with an in-place form (the module docstring): their ``forward_into`` writes
#: ``f(z)`` into ``out``; sigmoid's, tanh's and relu's ``backward_into`` write the VJP into ``out``
#: (relu from 2048 elements on: below, ``np.where``'s new array is the cheaper one).
IN_PLACE_FORWARD = ("identity", "sigmoid", "tanh", "relu", "softmax")
IN_PLACE_BACKWARD = ("sigmoid", "tanh", "relu")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_in_place_twins_equal_the_allocating_forms_bit_for_bit(spec, dtype):
    """``forward_into``/``backward_into`` return exactly ``forward``/``backward``'s numbers (the
    module's "bit for bit" promise; in float32 a work array of another dtype would round
    differently), and the activations with an in-place form return ``out`` itself, filled — the
    training hot path keeps using that buffer. 64 x 40 = 2560 elements reach relu's bit-mask path;
    the upstream is drawn, and ``out`` starts as NaN."""
    act = registry.make_activation(spec)
    z = np.random.default_rng(11).normal(0.0, 4.0, size=(64, 40)).astype(dtype)
    g = upstream(z.shape, dtype, seed=5)
    out = np.full_like(z, np.nan)
    got = act.forward_into(z, out)
    np.testing.assert_array_equal(got, act.forward(z), err_msg=f"{act!r} forward_into")
    if act.name in IN_PLACE_FORWARD:
        assert got is out, f"{act!r}.forward_into did not write into out"
    a = act.forward(z)
    out = np.full_like(z, np.nan)
    got = act.backward_into(z, a, g.copy(), out)
    np.testing.assert_array_equal(got, act.backward(z, a, g), err_msg=f"{act!r} backward_into")
    if act.name in IN_PLACE_BACKWARD:
        assert got is out, f"{act!r}.backward_into did not write into out"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_elu_keeps_the_sign_of_negative_zero(alpha, dtype):
    """ELU(−0.0) = α·expm1(−0.0) = −0.0, as torch's ``x > 0 ? x : α·expm1(x)`` gives (a clamp with
    ``min(z, 0)`` before expm1 would turn it into +0.0); +0.0 stays +0.0."""
    act = registry.make_activation({"name": "elu", "alpha": alpha})
    out = act.forward(np.array([[-0.0, 0.0]], dtype=dtype))
    assert out.tolist() == [[0.0, 0.0]] and np.signbit(out).tolist() == [[True, False]]
