"""Diagnosis: each planted pattern is one root cause, named at the right place — off by the batch
size, divided by it once too often, sign flipped, transposed, wrong only at a kink, wrong only for
large logits, softmax's VJP wrong on its own (the layer below inherits it), a classic mistake
recognised by name, a wrong update rule — and a correct implementation gets no diagnosis at all."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference import compare_model, initial_state
from scratchnet_reference.conformance.runner import check_training
from scratchnet_reference.core.matrix import make_batch
from scratchnet_reference.diagnosis import Problem, annotate, summary_lines
from scratchnet_reference.diagnosis.causes import decode, group
from scratchnet_reference.reports.frames import gradient_report, records_frame

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


def diagnosed(impl, spec_kwargs, target="labels", n=8, state=None, with_problem=True):
    """``({(kind, where): root cause}, records)`` of ``impl`` on a seeded problem, annotated."""
    spec = ModelSpec(**spec_kwargs, seed=3)
    x, y = make_batch(spec, n, seed=3, target=target)
    state = state(initial_state(spec)) if state else initial_state(spec)
    records = compare_model(impl, spec, x, y, state=state)
    annotate(records, impl, Problem(spec, state, x, y)) if with_problem else annotate(records)
    assert any(r.status == "fail" for r in records), "the planted mistake was not caught"
    return {(c.kind, c.where): c for c, _, _ in group(records)}, records


FACTOR = ("factor", "loss gradient (every layer)")


def test_off_by_the_batch_size():
    found, records = diagnosed(UserImplementation("xN", grads_hook=times_batch), CLASSIFY)
    assert set(found) == {FACTOR}
    assert "yours = 8 × torch's = N (N = 8 the batch size, C = 4 the outputs) — your loss's gradient is that of a " \
           "sum, where torch's reduction='mean' for cross_entropy divides by N" in found[FACTOR].what
    assert {r.param for r in records if r.status == "fail"} == {f"layers.{k}.{p}" for k in range(3)
                                                                for p in ("weight", "bias")}


def test_divided_by_the_batch_size_once_too_often_under_sum():
    found, _ = diagnosed(UserImplementation("over-N", grads_hook=over_batch), {**CLASSIFY, "reduction": "sum"})
    assert set(found) == {FACTOR}
    assert "yours = 0.125 × torch's = 1/N" in found[FACTOR].what
    assert "divides by N although the reduction is 'sum'" in found[FACTOR].what


def test_sign_flipped():
    found, _ = diagnosed(UserImplementation("minus", grads_hook=sign_flipped), CLASSIFY)
    assert set(found) == {FACTOR} and found[FACTOR].what.startswith("sign flipped: yours = −1 × torch's")


@pytest.mark.parametrize("with_problem", [True, False], ids=["arrays", "records-only"])
def test_constant_factor_and_sign_from_the_records_alone(with_problem):
    """Without the arrays (e.g. in a hypothesis search) cosine and norm ratio still tell."""
    found, _ = diagnosed(UserImplementation("xN", grads_hook=times_batch), CLASSIFY, with_problem=with_problem)
    assert len(found) == 1 and "yours = 8 × torch's = N (N = 8" in next(iter(found.values())).what


def test_transposed_square_layer():
    spec = dict(sizes=(5, 4, 4, 3), hidden="tanh", output="identity", loss="mse")
    found, _ = diagnosed(UserImplementation("T", grads_hook=transposed(1)), spec, target="dense", n=6)
    assert set(found) == {("weight_transposed", "layers.1.weight")}
    assert found["weight_transposed", "layers.1.weight"].what.startswith("the weight gradient transposed")


def test_wrong_only_at_a_kink():
    def zero_unit(state):  # unit 2 of layer 0 has z == 0 for every input: ReLU's kink, exactly
        state["layers.0.weight"][2] = 0
        state["layers.0.bias"][2] = 0
        return state

    impl = UserImplementation("relu-kink", network_factory=every(ReLUPrimeOneAtZero))
    spec = dict(sizes=(4, 5, 3), hidden="relu", output="softmax", loss="cross_entropy")
    found, records = diagnosed(impl, spec, state=zero_unit)
    assert set(found) == {("kink", "layers.0 (relu backward)")}
    cause = found["kink", "layers.0 (relu backward)"]
    assert "(8 pre-activations are exactly 0 there)" in cause.evidence
    assert "relu'(0) = 0" in cause.right and "z > 0, not z >= 0" in cause.right
    assert {r.param for r in records if r.status == "fail"} == {"layers.0.weight", "layers.0.bias"}


def test_wrong_only_for_large_logits():
    def huge_logits(state):
        state["layers.1.weight"] *= 5000
        return state

    impl = UserImplementation("naive-softmax", network_factory=every(SoftmaxWithoutMax))
    spec = dict(sizes=(4, 5, 3), hidden="tanh", output="softmax", loss="cross_entropy")
    found, records = diagnosed(impl, spec, state=huge_logits)
    assert set(found) == {("large_logits", "layers.1 (softmax)")}
    assert "log-sum-exp" in found["large_logits", "layers.1 (softmax)"].right
    assert {r.check for r in records if r.status == "fail"} >= {"forward", "gradient"}


@pytest.mark.parametrize("spec, target, layer", [
    (dict(sizes=(5, 6, 4), hidden="tanh", output="softmax", loss="mse"), "dense", 1),
    (dict(sizes=(5, 6, 6, 4), hidden=("tanh", "softmax"), output="identity", loss="mse"), "dense", 1),
], ids=["softmax-before-mse", "hidden-softmax"])
def test_softmax_alone_wrong_while_fused_softmax_cross_entropy_is_right(spec, target, layer):
    """``s ⊙ g`` is no known mistake: the error enters at the softmax layer, and the layer below
    inherits it (your own δ there, carried down by torch's backward, explains its gradients)."""
    impl = UserImplementation("softmax-vjp", network_factory=every(SoftmaxWithoutInnerProduct))
    found, _ = diagnosed(impl, spec, target=target)
    assert set(found) == {("unexplained", f"layers.{layer} (softmax backward)")}
    assert "with softmax in layers." in found["unexplained", f"layers.{layer} (softmax backward)"].evidence
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
    assert set(found) == {("at_activation", "layers.1 (sigmoid backward)")}
    assert found["at_activation", "layers.1 (sigmoid backward)"].what == (
        "sigmoid's derivative evaluated at the activation a instead of the pre-activation z")


def test_a_wrong_update_rule_is_told_apart_from_wrong_gradients():
    records = check_training(UserImplementation("double-lr", lr_factor=2.0), "sgd", "full_batch", "float64", steps=3)
    broken = [r for r in records if r.status == "fail"]
    assert broken and all("the gradients of this model agree with torch, so the update rule (sgd(lr=0.1)"
                          in r.diagnosis for r in broken if r.check == "final_params")
    records = check_training(UserImplementation("xN", grads_hook=times_batch), "sgd", "full_batch", "float64",
                             steps=3)
    assert any("the gradients of this model are wrong" in r.diagnosis for r in records if r.status == "fail")


def test_the_gradient_report_and_the_summary_carry_the_root_causes():
    _, records = diagnosed(UserImplementation("xN", grads_hook=times_batch), CLASSIFY)
    report = gradient_report(records_frame(records))
    failing = report[report["status"] == "fail"]
    assert len(failing) == 12 and all([c.kind for c in decode(d)] == ["factor"] for d in failing["diagnosis"])
    assert (report[report["status"] != "fail"]["diagnosis"] == "").all()
    lines = summary_lines(records)
    assert lines[0].startswith("1. loss gradient (every layer): off by a constant factor: yours = 8 × torch's = N")
    assert "[12 failing rows, 1 combination]" in " ".join(" ".join(lines).split())
    assert not any(line.startswith("2.") for line in lines)


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
    found, records = diagnosed(impl, CLASSIFY)
    assert all(1 < r.tol_ratio < 10 for r in records if r.status == "fail")
    assert set(found) == {("marginal", "every failing tensor")}


def test_a_lower_layers_own_error_is_not_swallowed_as_inherited():
    """A softmax VJP no known mistake explains (layer 1) above relu'(0) = 1 (layer 0): your own δ at
    layer 1, carried down by torch's backward, does not explain layer 0 — two root causes."""
    def both(spec):
        net = every(SoftmaxWithoutInnerProduct)(spec)
        net.layers[0].activation = ReLUPrimeOneAtZero(**net.layers[0].activation.params)
        return net

    def zero_unit(state):
        state["layers.0.weight"][2] = 0
        state["layers.0.bias"][2] = 0
        return state

    spec = dict(sizes=(5, 6, 6, 4), hidden=("relu", "softmax"), output="identity", loss="mse")
    found, _ = diagnosed(UserImplementation("two", network_factory=both), spec, target="dense", state=zero_unit)
    assert set(found) == {("unexplained", "layers.1 (softmax backward)"), ("kink", "layers.0 (relu backward)")}


def test_torchs_derivative_at_a_kink_comes_from_torch_even_when_scratchnet_is_broken(monkeypatch):
    """With relu'(0) = 1 planted in scratchnet itself, the diagnosis still says torch's relu'(0) = 0."""
    from scratchnet.activations import ReLU

    monkeypatch.setattr(ReLU, "backward", ReLUPrimeOneAtZero.backward)

    def zero_unit(state):
        state["layers.0.weight"][2] = 0
        state["layers.0.bias"][2] = 0
        return state

    spec = dict(sizes=(4, 5, 3), hidden="relu", output="softmax", loss="cross_entropy")
    found, _ = diagnosed(UserImplementation("scratchnet-broken"), spec, state=zero_unit)
    assert set(found) == {("kink", "layers.0 (relu backward)")}
    assert "relu'(0) = 0" in found["kink", "layers.0 (relu backward)"].right
