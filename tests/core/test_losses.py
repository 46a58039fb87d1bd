"""Every registered loss: value against its formula, gradient against float64 central
differences (away from kinks), torch's subgradient at exact kinks, torch's reductions, target
forms (labels ≡ one-hot, label smoothing), dtypes."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import registry
from scratchnet.gradcheck import numerical_gradient
from scratchnet.losses import REDUCTIONS

from .helpers import (
    DTYPES,
    LOSS_VARIANTS,
    assert_fd_close,
    away_from_kinks,
    dense_target,
    loss_specs,
    matrices,
    min_kink_distance,
    output_bounds,
    shapes,
    spec_id,
    targets,
)

SPECS = loss_specs()


# -- reference formulas (per element ℓ(p, y), or per row for the distribution losses) ----------

def _huber(loss, d):
    a = abs(d)
    return 0.5 * a * a if a < loss.delta else loss.delta * (a - 0.5 * loss.delta)


def _smooth_l1(loss, d):
    a = abs(d)
    return a if loss.beta == 0 else (0.5 * a * a / loss.beta if a < loss.beta else a - 0.5 * loss.beta)


def _bce(loss, p, y):
    log_p = max(math.log(p), -100.0) if p > 0 else -100.0
    log_q = max(math.log1p(-p), -100.0) if p < 1 else -100.0
    return -(y * log_p + (1 - y) * log_q)


ELEMENT_REFERENCE = {   # ℓ(p, y); the sum is divided by N·C under "mean"
    "mse": lambda loss, p, y: (p - y) ** 2,
    "l1": lambda loss, p, y: abs(p - y),
    "huber": lambda loss, p, y: _huber(loss, p - y),
    "smooth_l1": lambda loss, p, y: _smooth_l1(loss, p - y),
    "binary_cross_entropy": _bce,
}
ROW_REFERENCE = {       # ℓ(p_row, y'_row); the sum is divided by N under "mean"
    "cross_entropy": lambda loss, p, y: -sum(t * math.log(q) for q, t in zip(p, y, strict=True) if t),
    "nll": lambda loss, p, y: -sum(t * q for q, t in zip(p, y, strict=True)),
}

#: torch's ∂ℓ/∂d at an exact kink of ``d = p − y`` (before the 1/n of the reduction):
#: l1 ``sign(0) = 0``; huber ``d < −δ ? −δ : d > δ ? δ : d`` (so ±δ at ±δ);
#: smooth_l1 ``d < −β ? −1 : d > β ? 1 : d/β`` (±1 at ±β, and sign(0) = 0 when β = 0).
TORCH_KINK_SLOPE = {
    "l1": lambda loss, k: 0.0,
    "huber": lambda loss, k: k,
    "smooth_l1": lambda loss, k: (k / loss.beta) if loss.beta else 0.0,
}


def reference_value(loss, p: np.ndarray, target: np.ndarray) -> float:
    n_classes = p.shape[1]
    if loss.name in ROW_REFERENCE:
        y = loss.smoothed(target, n_classes, p.dtype)
        total = sum(ROW_REFERENCE[loss.name](loss, list(pr), list(yr)) for pr, yr in zip(p, y, strict=True))
    else:
        y = dense_target(loss, target, n_classes)
        pairs = zip(p.ravel(), y.ravel(), strict=True)
        total = sum(ELEMENT_REFERENCE[loss.name](loss, float(a), float(b)) for a, b in pairs)
    return total / loss.divisor(p)


def draw_case(data, loss, dtype=np.float64, max_rows=5, max_cols=5):
    """Outputs ``p`` in the loss's domain and a prepared target, with ``p − y`` kept off kinks."""
    n, c = data.draw(shapes(max_rows, max_cols))
    lo, hi = output_bounds(loss)
    target = loss.prepare_target(data.draw(targets(loss, n, c)), c, np.dtype(dtype))
    p = data.draw(matrices((n, c), lo, hi))
    if loss.kinks:
        y = dense_target(loss, target, c)
        p = away_from_kinks(p, loss.kinks, offset=y)
    return p.astype(dtype), target


# -- the registry is fully covered --------------------------------------------------------------

def test_every_loss_has_a_reference_formula():
    missing = [n for n in registry.LOSSES if n not in ELEMENT_REFERENCE | ROW_REFERENCE]
    assert not missing, f"add a reference formula for {missing}"


def test_every_kinked_loss_states_its_torch_subgradient():
    kinked = {s["name"] for s in SPECS if registry.make_loss(s).kinks}
    assert kinked and kinked <= set(TORCH_KINK_SLOPE), f"add torch's kink slope for {kinked - set(TORCH_KINK_SLOPE)}"


def test_variants_name_registered_losses():
    assert set(LOSS_VARIANTS) <= set(registry.LOSSES)


def test_mean_reduction_divides_like_torch():
    """cross-entropy and NLL average over the batch, every other loss over all elements."""
    per_sample = {name for name, cls in registry.LOSSES.items() if cls.per_sample}
    assert per_sample == {"cross_entropy", "nll"}
    p = np.full((4, 3), 0.5)
    for name in registry.LOSSES:
        assert registry.make_loss(name).divisor(p) == (4 if name in per_sample else 12)
        assert registry.make_loss(name, "sum").divisor(p) == 1


# -- value ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@given(data=st.data())
def test_value_matches_formula(spec, reduction, data):
    loss = registry.make_loss(spec, reduction)
    p, target = draw_case(data, loss)
    assert math.isclose(float(loss.value(p, target)), reference_value(loss, p, target), rel_tol=1e-12, abs_tol=1e-12)


# -- gradient: central differences in float64 -------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@given(data=st.data())
def test_gradient_matches_central_differences(spec, reduction, data):
    loss = registry.make_loss(spec, reduction)
    p, target = draw_case(data, loss)
    if loss.kinks:
        assert min_kink_distance(p, loss.kinks, dense_target(loss, target, p.shape[1])) >= 1e-3
    numeric = numerical_gradient(lambda: float(loss.value(p, target)), p)
    assert_fd_close(f"loss {spec_id(spec)}({reduction})", loss.gradient(p, target), numeric,
                    magnitude=abs(float(loss.value(p, target))))


# -- exact kinks ------------------------------------------------------------------------------

KINKED = [s for s in SPECS if registry.make_loss(s).kinks]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", KINKED, ids=spec_id)
def test_exact_kink_subgradient_is_torchs(spec, dtype):
    loss = registry.make_loss(spec)
    y = np.array([[0.25, -1.5, 2.0]], dtype=dtype)
    for k in loss.kinks:
        p = (y + dtype(k)).astype(dtype)
        assert np.all(p - y == dtype(k)), "the kink must be hit exactly"
        grad = loss.gradient(p, y)
        expected = np.full_like(p, TORCH_KINK_SLOPE[loss.name](loss, k) / loss.divisor(p))
        assert grad.dtype == dtype
        np.testing.assert_array_equal(grad, expected, err_msg=f"{loss!r} at p - y = {k}")


@pytest.mark.parametrize("name", ["binary_cross_entropy", "mse"])
def test_binary_labels_with_one_output_are_the_target_column(name):
    loss = registry.make_loss(name)
    target = loss.prepare_target(np.array([0, 1, 1]), 1, np.dtype(np.float64))
    np.testing.assert_array_equal(target, [[0.0], [1.0], [1.0]])
    with pytest.raises(ValueError, match="label 2.*single output"):
        loss.prepare_target(np.array([0, 2]), 1, np.dtype(np.float64))


def test_l1_gradient_is_zero_where_output_equals_target():
    loss = registry.make_loss("l1")
    p = np.array([[0.5, 1.0, -2.0]])
    y = np.array([[0.5, 0.0, -2.0]])
    np.testing.assert_array_equal(loss.gradient(p, y), [[0.0, 1 / 3, 0.0]])


# -- reductions and target forms -------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@given(data=st.data())
def test_sum_is_mean_times_divisor(spec, data):
    mean, total = registry.make_loss(spec, "mean"), registry.make_loss(spec, "sum")
    p, target = draw_case(data, mean)
    n = mean.divisor(p)
    assert math.isclose(float(total.value(p, target)), float(mean.value(p, target)) * n, rel_tol=1e-12, abs_tol=1e-12)
    np.testing.assert_allclose(total.gradient(p, target), mean.gradient(p, target) * n, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@given(data=st.data())
def test_labels_equal_one_hot_rows(spec, data):
    loss = registry.make_loss(spec)
    n, c = data.draw(shapes())
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=np.int64)
    lo, hi = output_bounds(loss)
    p = data.draw(matrices((n, c), lo, hi))
    from_labels = loss.prepare_target(labels, c, np.dtype(np.float64))
    # one output unit: labels 0/1 are the target column (binary sigmoid), not a one-hot of width 1
    rows = labels[:, None].astype(float) if c == 1 and not loss.per_sample else np.eye(c)[labels]
    from_rows = loss.prepare_target(rows, c, np.dtype(np.float64))
    np.testing.assert_allclose(loss.value(p, from_labels), loss.value(p, from_rows), rtol=1e-15)
    np.testing.assert_allclose(loss.gradient(p, from_labels), loss.gradient(p, from_rows), rtol=1e-15)


@pytest.mark.parametrize("name", [n for n in registry.LOSSES if "label_smoothing" in registry.make_loss(n).params])
def test_label_smoothing_is_a_mixed_dense_target(name):
    eps, c = 0.3, 4
    smooth, plain = registry.make_loss({"name": name, "label_smoothing": eps}), registry.make_loss(name)
    labels = np.array([0, 3, 1])
    lo, hi = output_bounds(plain)
    p = np.random.default_rng(0).uniform(lo, hi, (3, c))
    mixed = np.eye(c)[labels] * (1 - eps) + eps / c
    assert math.isclose(smooth.value(p, labels), plain.value(p, mixed), rel_tol=1e-14)
    np.testing.assert_allclose(smooth.gradient(p, labels), plain.gradient(p, mixed), rtol=1e-14)


# -- edges of the domain ------------------------------------------------------------------------

def test_bce_clamps_each_log_at_minus_100_like_torch():
    loss = registry.make_loss("binary_cross_entropy", "sum")
    p = np.array([[0.0, 1.0, 0.0, 1.0]])
    y = np.array([[1.0, 0.0, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loss.value(p, y) == 200.0
        grad = loss.gradient(p, y)
    np.testing.assert_array_equal(grad, [[-1e12, 1e12, 0.0, 0.0]])   # (p − y)/max(p(1−p), 1e-12)


def test_cross_entropy_ignores_zero_probabilities_of_untargeted_classes():
    """0·log 0 = 0: an exact zero where the target has no mass is not a warning nor a NaN."""
    loss = registry.make_loss("cross_entropy")
    p = np.array([[1.0, 0.0], [0.25, 0.75]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss.value(p, y)
        grad = loss.gradient(p, y)
    assert value == pytest.approx(-math.log(0.75) / 2)
    np.testing.assert_allclose(grad, [[-0.5, 0.0], [0.0, -1 / 1.5]])


# -- dtype and purity -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_dtype_is_preserved(spec, dtype):
    loss = registry.make_loss(spec)
    lo, hi = output_bounds(loss)
    p = np.linspace(lo, hi, 12, dtype=dtype).reshape(4, 3)
    for y in (np.array([0, 2, 1, 1]), np.full((4, 3), 1 / 3, dtype=np.float64)):
        target = loss.prepare_target(y, 3, np.dtype(dtype))
        assert target.dtype == (np.intp if target.ndim == 1 else dtype)
        p0, t0 = p.copy(), target.copy()
        assert np.asarray(loss.value(p, target)).dtype == dtype
        grad = loss.gradient(p, target)
        assert grad.dtype == dtype and grad.shape == p.shape
        np.testing.assert_array_equal(p, p0)
        np.testing.assert_array_equal(target, t0)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_prepare_target_refuses_an_empty_batch_of_rows(spec):
    """``Loss.prepare_target``'s own check, called directly (the network refuses an empty batch before
    it gets here, so no network-level test reaches it)."""
    loss = registry.make_loss(spec)
    with pytest.raises(ValueError, match=r"^y must have at least one row, got shape \(0, 3\)$"):
        loss.prepare_target(np.zeros((0, 3)), 3, np.dtype(np.float64))


def test_outputs_for_names_the_loss_argument_when_refusing():
    assert "softmax" in registry.outputs_for("cross_entropy")
    with pytest.raises(ValueError, match=r"^unknown loss 'nope'; valid: "):
        registry.outputs_for("nope")


# -- smooth L1: torch's defaults and its branch at the exact kink ----------------------------------------

def test_smooth_l1_defaults_are_torchs():
    """``SmoothL1Loss()`` is torch's ``smooth_l1_loss`` with its defaults: mean reduction, β = 1
    (differences on both sides of 1, where another β or a sum would show)."""
    torch = pytest.importorskip("torch")
    from scratchnet.losses import SmoothL1Loss

    loss = SmoothL1Loss()
    assert (loss.reduction, loss.params) == ("mean", {"beta": 1.0})
    rng = np.random.default_rng(3)
    p, y = rng.normal(0, 2, size=(5, 3)), rng.normal(0, 2, size=(5, 3))
    expected = torch.nn.functional.smooth_l1_loss(torch.tensor(p), torch.tensor(y)).item()
    assert float(loss.value(p, y)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.1, 0.2])
def test_smooth_l1_at_exactly_beta_takes_torchs_linear_branch(beta, dtype):
    """At ``|d| = β`` both branches are ``β/2`` in exact arithmetic, but ``½d²/β`` rounds up one ulp
    for these β; torch takes ``|d| − ½β`` there (``|d| < β`` is the quadratic's condition), and
    so does scratchnet, bit for bit."""
    torch = pytest.importorskip("torch")
    from scratchnet.losses import SmoothL1Loss

    p = np.array([[beta, -beta]], dtype=dtype)
    y = np.zeros_like(p)
    ours = SmoothL1Loss("sum", beta).value(p, y)
    theirs = torch.nn.functional.smooth_l1_loss(torch.tensor(p), torch.tensor(y), reduction="sum", beta=beta)
    assert ours == theirs.numpy()
    assert ours == dtype(2) * (p[0, 0] - dtype(0.5 * beta))


# -- probability rows are judged by their float64 sum ------------------------------------------------------

@pytest.mark.parametrize("name", ["cross_entropy", "nll"])
def test_float32_probability_rows_are_summed_in_float64(name):
    """A float32 row ``[1, 167·2⁻²⁴, 0]`` sums to 1 + 9.95e-6 — inside the 1e-5 allowed — but
    float32's own sum rounds it (a tie, to even) to 1 + 1.001e-5: the check accumulates in float64,
    so the row is accepted, as in float64."""
    small = np.float32(167 * 2.0**-24)
    y = np.array([[1.0, small, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    assert abs(float(np.float32(1.0) + small) - 1.0) > 1e-5 >= abs(float(small))   # float32 would refuse it
    loss = registry.make_loss(name)
    for dtype in DTYPES:
        np.testing.assert_array_equal(loss.prepare_target(y, 3, np.dtype(dtype)), y.astype(dtype))
