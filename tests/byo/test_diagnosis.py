"""Diagnosis: each planted pattern is recognised and named on the right parameters — off by the
batch size, divided by it once too often, sign flipped, transposed, wrong only at a kink, wrong
only for large logits, softmax wrong on its own while the fused softmax + cross-entropy is right,
a classic mistake recognised by name, a wrong update rule — and a correct implementation gets
no diagnosis at all."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference import compare_model, initial_state
from scratchnet_reference.byo.diagnosis import Problem, annotate, summary_lines
from scratchnet_reference.conformance.runner import check_training
from scratchnet_reference.core.matrix import make_batch
from scratchnet_reference.reports.tables import gradient_report, records_frame

from scratchnet import ModelSpec
from scratchnet.activations import Sigmoid

from .impls import (
    ReLUPrimeOneAtZero,
    SoftmaxWithoutInnerProduct,
    SoftmaxWithoutMax,
    UserImplementation,
    every,
    over_batch,
    sign_flipped,
    times_batch,
    transposed,
)

pytestmark = pytest.mark.filterwarnings("ignore::scratchnet.network.NonFiniteWarning")

CLASSIFY = dict(sizes=(5, 7, 6, 4), hidden="tanh", output="softmax", loss="cross_entropy")


def diagnosed(impl, spec_kwargs, target="labels", n=8, state=None, with_problem=True, per_flavour=False):
    """Records of ``impl`` on a seeded problem, annotated; ``{param or check: diagnosis}`` of the
    failing ones (the same in every flavour)."""
    spec = ModelSpec(**spec_kwargs, seed=3)
    x, y = make_batch(spec, n, seed=3, target=target)
    state = state(initial_state(spec)) if state else initial_state(spec)
    records = compare_model(impl, spec, x, y, state=state)
    annotate(records, impl, Problem(spec, state, x, y)) if with_problem else annotate(records)
    failing = [r for r in records if r.status == "fail"]
    assert failing, "the planted mistake was not caught"
    out: dict[str, set[str]] = {}
    for r in failing:
        out.setdefault(r.param if r.check == "gradient" else r.check, set()).add(r.diagnosis)
    if per_flavour:  # texts that quote a tol_ratio differ between flavours
        return {f"{k}#{i}": t for k, v in out.items() for i, t in enumerate(sorted(v))}, records
    assert all(len(texts) == 1 for texts in out.values()), out  # every flavour says the same
    return {k: next(iter(v)) for k, v in out.items()}, records


def test_off_by_the_batch_size():
    found, _ = diagnosed(UserImplementation("xN", grads_hook=times_batch), CLASSIFY)
    assert set(found) == {f"layers.{k}.{p}" for k in range(3) for p in ("weight", "bias")}
    for text in found.values():
        assert "off by a constant factor, direction right: ×8 = N = 8, the batch size" in text
    assert "first wrong layer is the output layer" in found["layers.2.weight"]
    assert "inherits the error of layers.2" in found["layers.0.bias"]


def test_divided_by_the_batch_size_once_too_often_under_sum():
    found, _ = diagnosed(UserImplementation("over-N", grads_hook=over_batch), {**CLASSIFY, "reduction": "sum"})
    expected = "×0.125 = 1/N, N = 8 the batch size: divided by N although the reduction is 'sum'"
    assert expected in found["layers.1.weight"]


def test_sign_flipped():
    found, _ = diagnosed(UserImplementation("minus", grads_hook=sign_flipped), CLASSIFY)
    assert all(text.startswith("sign flipped: it is −1 × torch's gradient") for text in found.values())


@pytest.mark.parametrize("with_problem", [True, False], ids=["arrays", "records-only"])
def test_constant_factor_and_sign_from_the_records_alone(with_problem):
    """Without the arrays (e.g. in a hypothesis search) cosine and norm ratio still tell."""
    found, _ = diagnosed(UserImplementation("xN", grads_hook=times_batch), CLASSIFY, with_problem=with_problem)
    assert "×8 = N = 8" in found["layers.0.weight"]


def test_transposed_square_layer():
    spec = dict(sizes=(5, 4, 4, 3), hidden="tanh", output="identity", loss="mse")
    found, _ = diagnosed(UserImplementation("T", grads_hook=transposed(1)), spec, target="dense", n=6)
    assert set(found) == {"layers.1.weight"}
    assert found["layers.1.weight"].startswith("transposed: it equals torch's gradient transposed")
    assert "only the weight gradient of this layer is wrong" in found["layers.1.weight"]


def test_wrong_only_at_a_kink():
    def zero_unit(state):  # unit 2 of layer 0 has z == 0 for every input: ReLU's kink, exactly
        state["layers.0.weight"][2] = 0
        state["layers.0.bias"][2] = 0
        return state

    impl = UserImplementation("relu-kink", network_factory=every(ReLUPrimeOneAtZero))
    spec = dict(sizes=(4, 5, 3), hidden="relu", output="softmax", loss="cross_entropy")
    found, _ = diagnosed(impl, spec, state=zero_unit)
    assert set(found) == {"layers.0.weight", "layers.0.bias"}
    text = found["layers.0.weight"]
    assert "wrong only at kinks: 8 pre-activations of layer 0 (relu) are exactly 0" in text
    assert "relu'(0) = 0" in text and "z > 0, not z >= 0" in text


def test_wrong_only_for_large_logits():
    def huge_logits(state):
        state["layers.1.weight"] *= 5000
        return state

    impl = UserImplementation("naive-softmax", network_factory=every(SoftmaxWithoutMax))
    spec = dict(sizes=(4, 5, 3), hidden="tanh", output="softmax", loss="cross_entropy")
    found, _ = diagnosed(impl, spec, state=huge_logits)
    assert "forward" in found and "layers.1.weight" in found
    for text in found.values():
        assert "wrong only when logits are large: max |logit| = " in text and "log-sum-exp" in text


@pytest.mark.parametrize("spec, target, wrong", [
    (dict(sizes=(5, 6, 4), hidden="tanh", output="softmax", loss="mse"), "dense", "the softmax before mse"),
    (dict(sizes=(5, 6, 6, 4), hidden=("tanh", "softmax"), output="identity", loss="mse"), "dense",
     "the hidden softmax"),
], ids=["softmax-before-mse", "hidden-softmax"])
def test_softmax_alone_wrong_while_fused_softmax_cross_entropy_is_right(spec, target, wrong):
    impl = UserImplementation("softmax-vjp", network_factory=every(SoftmaxWithoutInnerProduct))
    found, _ = diagnosed(impl, spec, target=target)
    for text in found.values():
        assert f"softmax on its own is wrong: with {wrong} replaced every check passes" in text
        assert "softmax + cross_entropy (fused: ∂L/∂z = p − y) passes on the same network" in text
    # and indeed: the fused pair on its own is right
    fused = ModelSpec((5, 6, 4), hidden="tanh", output="softmax", loss="cross_entropy")
    records = compare_model(impl, fused, *make_batch(fused, 8))
    assert all(r.status == "pass" for r in records)


class SigmoidPrimeOfActivation(Sigmoid):
    def backward(self, z, a, grad):
        s = Sigmoid().forward(a)
        return grad * s * (1 - s)


def test_a_classic_mistake_is_named():
    impl = UserImplementation("sigmoid-prime-of-a", network_factory=every(SigmoidPrimeOfActivation))
    spec = dict(sizes=(5, 6, 6, 3), hidden=("tanh", "sigmoid"), output="identity", loss="mse")
    found, _ = diagnosed(impl, spec, target="dense", state=lambda s: {**s, "layers.1.weight": 5 * s["layers.1.weight"]})
    assert set(found) == {f"layers.{k}.{p}" for k in (0, 1) for p in ("weight", "bias")}
    assert all("matches a known mistake — sigmoid's derivative evaluated at the activation a instead of the "
               "pre-activation z" in text for text in found.values())
    assert "the step δ_1 = (δ_2 W_2) ⊙ sigmoid'(z_1) is wrong" in found["layers.1.bias"]


def test_a_wrong_update_rule_is_told_apart_from_wrong_gradients():
    records = check_training(UserImplementation("double-lr", lr_factor=2.0), "sgd", "full_batch", "float64", steps=3)
    broken = [r for r in records if r.status == "fail"]
    assert broken and all("the gradients of this model agree with torch, so the update rule (sgd(lr=0.1)"
                          in r.diagnosis for r in broken if r.check == "final_params")
    records = check_training(UserImplementation("xN", grads_hook=times_batch), "sgd", "full_batch", "float64",
                             steps=3)
    assert any("the gradients of this model are wrong" in r.diagnosis for r in records if r.status == "fail")


def test_the_gradient_report_and_the_summary_carry_the_diagnosis():
    _, records = diagnosed(UserImplementation("xN", grads_hook=times_batch), CLASSIFY)
    report = gradient_report(records_frame(records))
    failing = report[report["status"] == "fail"]
    assert len(failing) == 12 and failing["diagnosis"].str.contains("×8 = N = 8").all()
    assert (report[report["status"] != "fail"]["diagnosis"] == "").all()
    lines = summary_lines(records)
    assert lines[0].startswith("tanh,tanh → softmax + cross_entropy (mean) float64 cpu")
    assert any("all 6 failing: off by a constant factor" in line for line in lines)
    assert any(line.strip().startswith("layers.2 weight+bias: first wrong layer is the output layer") for line in lines)


def test_a_correct_implementation_gets_no_diagnosis():
    spec = ModelSpec(**CLASSIFY)
    x, y = make_batch(spec, 8)
    impl = UserImplementation()
    records = annotate(compare_model(impl, spec, x, y), impl, Problem(spec, initial_state(spec), x, y))
    assert all(r.status == "pass" and r.diagnosis == "" for r in records)
    assert summary_lines(records) == []


def test_problem_describes_the_example():
    spec = ModelSpec((3, 4, 5), hidden="relu", output="softmax", loss="cross_entropy", seed=7)
    state = initial_state(spec)
    state["layers.0.bias"] = np.zeros(4)
    x, y = make_batch(spec, 6, seed=7)
    x[:2] = 0.0
    text = Problem(spec, state, x, y).describe()
    assert text.startswith("3-4-5 relu→softmax+cross_entropy(mean) float64, x (6, 3), y (6,) labels, max |logit| ")
    assert text.endswith("8 pre-activations exactly at a kink")


def test_a_marginal_failure_is_called_marginal_not_a_pattern():
    """Just past the tolerance, any 'constant factor' would fit: the diagnosis says drift instead."""
    impl = UserImplementation("drift", grads_hook=lambda grads, x: {k: g * (1 + 1e-9) for k, g in grads.items()})
    found, records = diagnosed(impl, CLASSIFY, per_flavour=True)
    assert all(1 < r.tol_ratio < 10 for r in records if r.status == "fail")
    assert found and all("marginal: just past the tolerance (tol_ratio " in text for text in found.values()), found
