"""``compare_model``: a correct implementation passes at the stated tolerances, the
finite-difference oracle sides with the right party, records are complete and consistent,
``measure`` has the documented NaN/inf semantics, and torch's own breakdown is judged by a second oracle."""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest
from scratchnet_reference import CHECKS, ScratchnetImplementation, compare_model, flavours_for, initial_state, tolerance
from scratchnet_reference.core.mapping import FLAVOURS
from scratchnet_reference.core.matrix import make_batch
from scratchnet_reference.core.records import STATUSES, Record, measure, vector_agreement

import scratchnet
from scratchnet import ModelSpec, Network
from scratchnet.activations import Tanh

DTYPES = ("float64", "float32")

#: (spec keyword arguments, target kind): fused and modular pairs, kinks, hyper-parameters,
#: both reductions, label / one-hot / soft / dense targets, a non-square 3-layer net.
SPECS = {
    "tanh-softmax-ce": (dict(sizes=(5, 7, 6, 4), hidden="tanh", output="softmax", loss="cross_entropy"), "labels"),
    "relu-sigmoid-bce": (dict(sizes=(5, 7, 3), hidden="relu", output="sigmoid", loss="binary_cross_entropy"),
                         "dense"),
    "gelu-logsoftmax-nll": (dict(sizes=(4, 6, 5), hidden={"name": "gelu", "approximate": "tanh"},
                                 output="log_softmax", loss={"name": "nll", "label_smoothing": 0.1}), "soft"),
    "elu-identity-huber-sum": (dict(sizes=(3, 8, 2), hidden={"name": "elu", "alpha": 0.5}, output="identity",
                                    loss={"name": "huber", "delta": 0.5}, reduction="sum"), "dense"),
    "leaky-softplus-silu-mse": (dict(sizes=(4, 6, 5, 3), hidden=({"name": "leaky_relu", "negative_slope": 0.2},
                                                                 {"name": "softplus", "beta": 2.0}),
                                     output="silu", loss="mse"), "dense"),
    "sigmoid-softmax-ce-onehot": (dict(sizes=(6, 5, 4), hidden="sigmoid", output="softmax",
                                       loss={"name": "cross_entropy", "label_smoothing": 0.2}), "one_hot"),
}


def make_case(key: str, dtype: str, n: int = 8, seed: int = 4):
    kwargs, target = SPECS[key]
    spec = ModelSpec(dtype=dtype, seed=seed, **kwargs)
    x, y = make_batch(spec, n, seed=seed, target=target)
    return spec, x, y


def gradient_records(records):
    return [r for r in records if r.check == "gradient"]


# -- a correct implementation passes -----------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", list(SPECS))
def test_correct_implementation_passes_at_the_stated_tolerance(key, dtype, correct_impl):
    spec, x, y = make_case(key, dtype)
    records = compare_model(correct_impl, spec, x, y, fd="never")
    flavours = flavours_for(spec)
    n_params = 2 * spec.n_layers
    assert len(records) == len(flavours) * (3 + n_params)  # inputs intact, output, loss, every parameter
    intact = [r for r in records if r.check == "inputs"]
    assert len(intact) == len(flavours) and all(r.status == "pass" and r.tol_ratio == 0 for r in intact)
    records = [r for r in records if r.check != "inputs"]
    assert {r.flavour for r in records} == set(flavours)
    for r in records:
        tol = tolerance(dtype, r.check)
        assert r.rtol == tol.rtol, f"{r.check} {r.param}: rtol {r.rtol} is not the table's {tol.rtol}"
        assert r.atol >= tol.atol
        assert r.status == "pass" and r.passed and r.tol_ratio <= 1, \
            f"{r.flavour} {r.check} {r.param}: tol_ratio {r.tol_ratio:.3g} ({r.max_abs_err:.3g} abs)"


def test_the_fused_flavour_is_compared_where_torch_has_one():
    spec, _, _ = make_case("tanh-softmax-ce", "float64")
    assert flavours_for(spec) == FLAVOURS
    spec, _, _ = make_case("elu-identity-huber-sum", "float64")
    assert flavours_for(spec) == ("modular",)


# -- the finite-difference oracle ------------------------------------------------------------

class TanhPrimeOneMinusA(Tanh):
    """tanh'(z) written as 1 − a instead of 1 − a² (a wrong derivative, forward intact)."""

    def backward(self, z, a, grad):
        return grad * (1 - a)


class DoubledTanh(Tanh):
    """A different function, 2·tanh(z), with its own correct derivative: forward and backward
    agree with each other but not with torch."""

    def forward(self, z):
        return 2 * np.tanh(z)

    def backward(self, z, a, grad):
        return grad * (2 - a * a / 2)


def with_activation(cls):
    def factory(spec: ModelSpec) -> Network:
        net = Network(spec)
        for layer in net.layers:
            if layer.activation.name == cls.name:
                layer.activation = cls()
        return net
    return factory


@pytest.mark.parametrize("dtype", DTYPES)
def test_fd_oracle_agrees_with_both_for_a_correct_implementation(dtype, correct_impl):
    spec, x, y = make_case("tanh-softmax-ce", dtype)
    records = compare_model(correct_impl, spec, x, y, fd="always")
    grads = gradient_records(records)
    assert grads and all(r.fd_verdict == "both" for r in grads), [(r.param, r.fd_verdict) for r in grads]
    assert all(r.fd_verdict == "" for r in records if r.check != "gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_fd_oracle_sides_with_torch_against_a_wrong_derivative(dtype):
    broken = ScratchnetImplementation("tanh-prime-1-minus-a", with_activation(TanhPrimeOneMinusA))
    spec, x, y = make_case("tanh-softmax-ce", dtype)
    records = compare_model(broken, spec, x, y, fd="always")
    verdicts = {(r.flavour, r.param): (r.status, r.fd_verdict) for r in gradient_records(records)}
    for flavour in flavours_for(spec):
        # the output layer's gradient does not go through tanh'; every layer below does
        assert verdicts[(flavour, "layers.2.weight")] == ("pass", "both")
        assert verdicts[(flavour, "layers.2.bias")] == ("pass", "both")
        for name in ("layers.1.weight", "layers.1.bias", "layers.0.weight", "layers.0.bias"):
            assert verdicts[(flavour, name)] == ("fail", "torch"), (flavour, name)


def test_fd_oracle_sides_with_the_implementation_when_only_its_forward_differs():
    """FD differentiates the implementation's own loss: a self-consistent implementation of a
    different function gets ``impl`` — the backward is right for *its* forward, and the forward
    record fails."""
    odd = ScratchnetImplementation("doubled-tanh", with_activation(DoubledTanh))
    spec, x, y = make_case("tanh-softmax-ce", "float64")
    records = compare_model(odd, spec, x, y, fd="on_failure")
    assert any(r.check == "forward" and r.status == "fail" for r in records)
    failing = [r for r in gradient_records(records) if r.status == "fail"]
    assert failing and all(r.fd_verdict == "impl" for r in failing)


def test_fd_runs_only_where_asked():
    broken = ScratchnetImplementation("tanh-prime-1-minus-a", with_activation(TanhPrimeOneMinusA))
    spec, x, y = make_case("tanh-softmax-ce", "float64")
    never = compare_model(broken, spec, x, y, fd="never")
    assert any(r.status == "fail" for r in never) and all(r.fd_verdict == "" for r in never)
    on_failure = gradient_records(compare_model(broken, spec, x, y, fd="on_failure"))
    assert all((r.fd_verdict != "") == (r.status != "pass") for r in on_failure)
    with pytest.raises(ValueError, match="fd must be"):
        compare_model(broken, spec, x, y, fd="sometimes")


# -- records -----------------------------------------------------------------------------------

def parse_index(text: str) -> tuple[int, ...]:
    value = ast.literal_eval(text)
    assert isinstance(value, tuple) and all(isinstance(i, int) for i in value), text
    return value


@pytest.mark.parametrize("dtype", DTYPES)
def test_records_have_every_field_filled_sensibly(dtype, correct_impl, torch):
    spec, x, y = make_case("tanh-softmax-ce", dtype)
    state = initial_state(spec)
    records = [r for r in compare_model(correct_impl, spec, x, y) if r.check != "inputs"]  # (test_boundary)
    assert all(isinstance(r, Record) for r in records)
    shapes = {"output": (8, 4), "loss": (), **{k: v.shape for k, v in state.items()}}
    for r in records:
        d = r.to_dict()
        assert list(d) == Record.columns()
        assert r.check in CHECKS[:3] and r.status in STATUSES and r.flavour in FLAVOURS
        assert r.param in shapes and r.shape == str(shapes[r.param])
        assert (r.hidden, r.output, r.loss) == ("tanh,tanh", "softmax", "cross_entropy")
        assert (r.reduction, r.dtype, r.device, r.sizes, r.seed) == ("mean", dtype, "cpu", "5-7-6-4", 4)
        assert (r.impl, r.optimizer, r.gd_mode, r.step, r.first_break_step) == ("scratchnet", "", "", -1, -1)
        for name in ("max_abs_err", "max_rel_err", "tol_ratio", "atol", "rtol"):
            value = getattr(r, name)
            assert isinstance(value, float) and np.isfinite(value) and value >= 0, (name, value)
        assert r.atol > 0 and r.rtol > 0
        assert r.passed is True and r.status == "pass" and r.note == ""
        index = parse_index(r.worst_index)
        assert len(index) == len(shapes[r.param])
        assert all(0 <= i < n for i, n in zip(index, shapes[r.param], strict=True))
        assert r.device_name == "cpu"
        versions = json.loads(r.versions)
        assert versions["numpy"] == np.__version__ and versions["torch"] == torch.__version__
        assert versions["scratchnet"] == scratchnet.__version__ and versions["python"]
        if r.check == "gradient":
            assert r.cosine == pytest.approx(1.0, abs=1e-6) and r.norm_ratio == pytest.approx(1.0, rel=1e-4)
        if r.check == "loss":
            assert np.isfinite(r.actual_value) and np.isfinite(r.expected_value)
            # tol_ratio is exactly the documented formula
            ratio = abs(r.actual_value - r.expected_value) / (r.atol + r.noise_floor + r.rtol * abs(r.expected_value))
            assert r.tol_ratio == pytest.approx(ratio, rel=1e-12, abs=1e-300)
            assert r.max_abs_err == abs(r.actual_value - r.expected_value)
        # the measured rounding-noise floor is a small non-negative slack, not a loophole
        assert np.isfinite(r.noise_floor) and 0 <= r.noise_floor <= r.atol


def test_worst_index_points_at_the_worst_element():
    a = np.zeros((3, 4))
    b = np.zeros((3, 4))
    a[2, 1] = 1e-3
    a[0, 3] = 1e-4
    stats = measure(a, b, 1e-6, 1e-9)
    assert parse_index(stats["worst_index"]) == (2, 1)
    assert stats["max_abs_err"] == 1e-3 and stats["tol_ratio"] == pytest.approx(1e-3 / 1e-9)


# -- measure: NaN / inf semantics --------------------------------------------------------------

INF, NAN = np.inf, np.nan


@pytest.mark.parametrize("actual, expected, agree", [
    (NAN, 1.0, False),        # NaN on one side is a failure ...
    (1.0, NAN, False),
    (NAN, NAN, True),         # ... unless on both
    (INF, INF, True),         # equal infinities agree
    (-INF, -INF, True),
    (INF, -INF, False),
    (INF, 1e300, False),
    (1.0, INF, False),
    (NAN, INF, False),
    (0.0, -0.0, True),
], ids=lambda v: repr(v))
def test_measure_nan_and_infinity_semantics(actual, expected, agree):
    a = np.array([0.5, actual, 2.0])
    b = np.array([0.5, expected, 2.0])
    stats = measure(a, b, rtol=1e-10, atol=1e-12)
    assert (stats["tol_ratio"] <= 1) is agree, stats
    if not agree:
        assert stats["tol_ratio"] == INF and stats["max_abs_err"] == INF and stats["worst_index"] == "(1,)"
        assert stats["max_rel_err"] == INF  # not NaN, also for a finite value against ±inf


@pytest.mark.parametrize("rtol, atol", [(0.0, 1e-12), (1e-10, 0.0), (0.0, 0.0)])
@pytest.mark.parametrize("value", [0.0, 1.0, INF, -INF, NAN])
def test_measure_identical_values_agree_for_any_tolerance(value, rtol, atol):
    """Identical tensors have tol_ratio 0 whatever the tolerance: 0/0 and 0/(0·inf) must not
    turn into an infinite disagreement."""
    stats = measure(np.array([value]), np.array([value]), rtol=rtol, atol=atol)
    assert stats["tol_ratio"] == 0.0 and stats["max_abs_err"] == 0.0 and stats["max_rel_err"] == 0.0, stats


def test_measure_formula_and_shape_check():
    stats = measure(np.array([1.0, 2.0]), np.array([1.5, 2.0]), rtol=0.1, atol=0.05)
    assert stats["tol_ratio"] == pytest.approx(0.5 / (0.05 + 0.1 * 1.5))
    assert stats["max_rel_err"] == pytest.approx(0.5 / 1.5)
    with pytest.raises(ValueError, match="shape"):
        measure(np.zeros(3), np.zeros((3, 1)), 1e-6, 1e-9)


def test_vector_agreement_shows_transposes_and_rescaling():
    g = np.arange(1.0, 10.0).reshape(3, 3)
    same = vector_agreement(g, g)
    assert same["cosine"] == pytest.approx(1.0) and same["norm_ratio"] == 1.0
    transposed = vector_agreement(g.T, g)
    assert transposed["cosine"] < 0.99 and transposed["norm_ratio"] == pytest.approx(1.0)
    scaled = vector_agreement(8 * g, g)
    assert scaled["cosine"] == pytest.approx(1.0) and scaled["norm_ratio"] == pytest.approx(8.0)


# -- where torch's modular path breaks down, a second oracle judges -----------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss, target, oracle", [
    ("softmax", "cross_entropy", "labels", "torch_fused"),        # −Σ y log softmax: log(0) · 0 = NaN
    ("sigmoid", "binary_cross_entropy", "dense", "torch_fused"),  # σ rounds to exactly 0/1 under the log
    ("sigmoid", "cross_entropy", "labels", "torch_stable"),       # log σ(z) of σ = 0: torch has no fused op
    ("softmax", "binary_cross_entropy", "dense", "torch_stable_float64"),  # unfused: the stable form
])
def test_modular_torch_breakdown_is_judged_by_a_second_oracle(output, loss, target, oracle, dtype, correct_impl):
    spec = ModelSpec((4, 3), output=output, loss=loss, dtype=dtype, seed=2)
    x, y = make_batch(spec, 6, seed=2, target=target)
    x = x * 2e4  # logits ~1e4
    records = [r for r in compare_model(correct_impl, spec, x, y, fd="never") if r.check != "inputs"]
    modular = [r for r in records if r.flavour == "modular"]
    assert all(r.status == "pass" for r in records), \
        [(r.flavour, r.check, r.param, r.oracle, r.status, r.tol_ratio) for r in records if r.status != "pass"]
    assert {r.oracle for r in modular} == {oracle}
    assert all(r.oracle == "torch" for r in records if r.flavour == "fused")
    assert all(np.isfinite(r.actual_value) for r in records if r.check == "loss")


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_stable_oracle_catches_a_wrong_gradient_in_the_saturated_corner(dtype):
    """softmax + BCE (unfused) at saturated logits: an implementation whose output delta is off
    by 1 % there fails against ``torch_stable_float64`` — the second oracle has teeth. In float32
    the clamps that rounding switches on may decide the value (torch's own float32 path farther from
    the oracle than the gradient is large): then it must say ``unverified``; it never says ``pass``.
    (Which float32 records rounding decides depends on the drawn weights: with float32 weights drawn
    in float32, both states occur on this batch.)"""
    class Off(scratchnet.Network):
        def _backward(self, target):
            out = self.layers[-1]
            value = self.loss_fn.value(out.a, target)
            delta = 1.01 * out.activation.backward(out.z, out.a, self.loss_fn.gradient(out.a, target))
            grad = out.backward_from_z(delta, need_input_grad=len(self.layers) > 1)
            for k in range(len(self.layers) - 2, -1, -1):
                grad = self.layers[k].backward(grad, need_input_grad=k > 0)
            return float(value)

    spec = ModelSpec((4, 3), output="softmax", loss="binary_cross_entropy", dtype=dtype, seed=2)
    x, y = make_batch(spec, 6, seed=2, target="dense")
    records = compare_model(ScratchnetImplementation("off", Off), spec, 30 * x, y, fd="never")
    grads = [r for r in records if r.check == "gradient"]
    allowed = {"fail"} if dtype == "float64" else {"fail", "unverified"}
    assert all(r.status in allowed for r in grads), [(r.param, r.status, r.tol_ratio, r.noise_floor) for r in grads]
    if dtype == "float64":
        assert {r.oracle for r in grads} == {"torch_stable_float64"}
    assert all("rounding decides" in r.note for r in grads if r.status == "unverified")


def test_the_stable_form_is_torchs_modular_function_where_that_is_accurate():
    """Away from saturation the stable oracle and torch's modular path compute the same loss and
    gradients (to float64 rounding) — BCE's clamp semantics included in the formula."""
    from scratchnet_reference.core.compare import prepare_batch, stable_forward_backward, torch_forward_backward
    from scratchnet_reference.core.mapping import to_tensor
    from scratchnet_reference.core.torch_model import build_torch_model

    torch = pytest.importorskip("torch")
    for output, loss, target in [("softmax", "binary_cross_entropy", "dense"), ("sigmoid", "binary_cross_entropy",
                                  "labels"), ("softmax", {"name": "cross_entropy", "label_smoothing": 0.1}, "soft"),
                                 ("sigmoid", "cross_entropy", "labels")]:
        for reduction in ("mean", "sum"):
            spec = ModelSpec((4, 5, 3), hidden="tanh", output=output, loss=loss, reduction=reduction, seed=2)
            x, y = make_batch(spec, 6, seed=2, target=target)
            xs, t = prepare_batch(spec, x, y)
            state = initial_state(spec)
            stable = stable_forward_backward(spec, state, xs, t, "cpu")
            model = build_torch_model(spec, state)
            ref = torch_forward_backward(model, spec, "modular", to_tensor(xs, "cpu", torch.float64),
                                         to_tensor(t, "cpu", torch.float64))
            assert not ref.broken
            assert stable.loss == pytest.approx(ref.loss, rel=1e-13, abs=1e-15)
            for name, g in ref.grads.items():
                np.testing.assert_allclose(stable.grads[name], g, rtol=1e-11, atol=1e-14)


# -- the oracle's own tolerance --------------------------------------------------------------

class SigmoidPrimeOfActivation(scratchnet.activations.Sigmoid):
    """σ'(a) instead of σ'(z): a wrong derivative whose error is small where z ≈ 0."""

    def backward(self, z, a, grad):
        s = scratchnet.activations.sigmoid(a)
        return grad * s * (1 - s)


def test_fd_verdict_on_nonfinite_differences_is_neither():
    from scratchnet_reference.core.compare import _fd_verdict

    nan = np.array([np.nan, 1.0])
    assert _fd_verdict(nan, nan.copy(), np.array([0.5, 1.0]), "float64") == "neither"


def test_fd_oracle_blames_a_small_but_clear_float32_error():
    """The float32 gradient check fails (tol_ratio > 2), and the oracle — float64 central
    differences, accurate to ~1e-9 of the scale — disagrees with the implementation by ~5e-4,
    a thousand times float32's rounding of these gradients. Its verdict must be ``torch``; a
    ``both`` contradicts the failing record. (Fails while ``FD_TOLERANCES["float32"]`` is
    rtol = atol = 1e-3, i.e. an absolute 1e-3 on gradients of size ~1e-2.)"""
    broken = ScratchnetImplementation("sigmoid-prime-of-a", with_activation(SigmoidPrimeOfActivation))
    spec = ModelSpec((5, 6, 6, 3), hidden=("tanh", "sigmoid"), output="identity",
                     loss={"name": "huber", "delta": 0.5}, dtype="float32", seed=3)
    x, y = make_batch(spec, 8, seed=3, target="dense")
    failing = [r for r in compare_model(broken, spec, x, y) if r.status == "fail"]
    assert failing and min(r.tol_ratio for r in failing) > 2
    assert {r.fd_verdict for r in failing} == {"torch"}, [(r.param, r.tol_ratio, r.fd_verdict) for r in failing]


@pytest.mark.parametrize("gap, oracle", [(16.0, "torch_float64"), (40.0, "torch_stable_float64")])
def test_float32_breakdown_goes_to_float64_torch_first(gap, oracle, correct_impl):
    """softmax + BCE (unfused) in float32 with one logit ``gap`` above the other: at 16,
    ``1 − p ≈ 1e-7`` is within 4 ulp of float32's 1 (torch's float32 path breaks down) but keeps
    every digit in float64, so torch in float64 on the same numbers judges; at 40, float64's
    ``1 − p ≈ 4e-18`` is gone too and the stable form judges the gradients (the float32 loss,
    which rounding pushed into BCE's −100 clamp, is ``unverified`` — never a pass)."""
    spec = ModelSpec((2, 2), output="softmax", loss="binary_cross_entropy", dtype="float32")
    state = {"layers.0.weight": np.zeros((2, 2), np.float32), "layers.0.bias": np.array([0.0, gap], np.float32)}
    x, y = np.ones((3, 2)), np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    records = [r for r in compare_model(correct_impl, spec, x, y, state=state, fd="never") if r.check != "inputs"]
    assert {r.oracle for r in records if r.status == "pass"} == {oracle}
    assert all(r.status != "fail" for r in records)
