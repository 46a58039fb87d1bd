"""Root causes of networks written by strangers: each independent mistake named once, at the right
place, in the right direction — and a correct network gets none. The networks live in
:mod:`.strangers` (layer objects with their own ops; a textbook column-vector network)."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference import compare_model, initial_state
from scratchnet_reference.core.matrix import make_batch
from scratchnet_reference.diagnosis import Problem, annotate
from scratchnet_reference.diagnosis.causes import decode, group

from scratchnet import ModelSpec

from . import strangers as s

N = 6  # batch size; with C = 5 outputs no two products of N, C, 2 and their inverses coincide


def causes(impl, target="dense", n=N, scale_x=1.0, state=None, **spec_kwargs):
    """``(root causes of the run, records)`` of ``impl`` on a seeded problem, fully annotated."""
    spec = ModelSpec(**spec_kwargs, seed=5)
    x, y = make_batch(spec, n, seed=5, target=target)
    x = x * scale_x
    state = state(initial_state(spec)) if state else initial_state(spec)
    records = annotate(compare_model(impl, spec, x, y, state=state), impl, Problem(spec, state, x, y))
    return [c for c, _, _ in group(records)], records


def kinds(found):
    """``{(kind, where)}``, the op named by substitution (``" [your mse, mse_grad]"``) left off."""
    return {(c.kind, c.where.split(" [your ")[0]) for c in found}


EXPOSE = pytest.mark.parametrize("expose", [True, False], ids=["ops-exposed", "network-only"])


def swapped(found, expose, *names):
    """With its ops exposed, each cause names the op whose swap for torch's clears it."""
    if expose:
        assert {c.where.split(" [your ")[1].rstrip("]") for c in found} == set(names)
    else:
        assert not any("[your " in c.where for c in found)


@EXPOSE
def test_mean_reported_sum_backpropagated_and_a_hidden_softmax_elementwise_are_two_root_causes(expose):
    impl = s.LayerNetAdapter(expose=expose, mse_grad=s.mse_grad_of_a_sum,
                             softmax_backward=s.softmax_backward_elementwise)
    found, records = causes(impl, sizes=(4, 6, 7, 5), hidden=("tanh", "softmax"), output="identity", loss="mse")
    assert kinds(found) == {("factor", "loss gradient (every layer)"), ("softmax_s1s", "layers.1 (softmax backward)")}
    swapped(found, expose, "mse, mse_grad", "softmax, softmax_backward")
    factor = next(c for c in found if c.kind == "factor")
    # torch's MSE mean divides by N·C = 30; a gradient 2(p − y) of the sum does not
    assert "yours = 30 × torch's = N · C" in factor.what
    assert "your loss's gradient is that of a sum, where torch's reduction='mean' for mse divides by N·C" in factor.what
    assert "your loss value agrees with torch's: only the gradient code carries the factor" in factor.evidence
    softmax = next(c for c in found if c.kind == "softmax_s1s")
    assert "s(1 − s)" in softmax.what and "diag(s) − s sᵀ" in softmax.right
    # the loss value (a mean) is right: no row of it is blamed
    assert all(r.status != "fail" for r in records if r.check == "loss")


def test_half_squared_error_summed_over_the_batch_is_n_c_over_2():
    """C = Σ_n ½‖a_n − y_n‖² has ∂C/∂a = a − y; torch's MSE mean Σ(a − y)²/(N·C) has 2(a − y)/(N·C):
    yours = N·C/2 × torch's (15 here), the loss value likewise."""
    found, records = causes(s.ColumnNetAdapter(), sizes=(4, 6, 5), hidden="tanh", output="identity", loss="mse")
    assert kinds(found) == {("factor", "loss gradient (every layer)")}
    assert "yours = 15 × torch's = N · C · 1/2" in found[0].what
    assert "a ½ in your loss" in found[0].what and "torch's reduction='mean' for mse divides by N·C" in found[0].what
    assert "your loss value is 15 × torch's too: the loss itself is defined with this factor" in found[0].evidence


@EXPOSE
def test_a_wrong_forward_in_a_hidden_layer_is_named_there(expose):
    impl = s.LayerNetAdapter(expose=expose, gelu=s.gelu_tanh, gelu_backward=s.gelu_tanh_backward)
    found, _ = causes(impl, sizes=(4, 6, 7, 5), hidden=("gelu", "tanh"), output="identity", loss="mse")
    assert kinds(found) == {("gelu_tanh", "layers.0 (gelu)")}
    swapped(found, expose, "gelu, gelu_backward")
    assert "tanh approximation" in found[0].what
    assert "replaced by identity (same weights) your output equals torch's" in found[0].evidence


@pytest.mark.parametrize("shrink, worst", [(0.02, "forward"), (0.01, "gradient")])
def test_a_shrunk_tiny_input_failure_is_still_named_not_marginal(shrink, worst):
    """Hypothesis shrinks toward tiny pre-activations, where the tanh approximation is within a few
    tolerances of GELU: the forward only just fails (or passes and only the gradients fail)."""
    def small(state):
        return {**state, "layers.0.weight": state["layers.0.weight"] * shrink,
                "layers.0.bias": state["layers.0.bias"] * shrink}

    impl = s.LayerNetAdapter(gelu=s.gelu_tanh, gelu_backward=s.gelu_tanh_backward)
    found, records = causes(impl, state=small, sizes=(4, 6, 7, 5), hidden=("gelu", "tanh"), output="identity",
                            loss="mse")
    first = next(r for r in records if r.status == "fail")
    assert first.check == worst and (worst == "gradient" or first.tol_ratio < 10)
    assert kinds(found) == {("gelu_tanh", "layers.0 (gelu)")}


def test_a_correct_network_has_no_root_cause():
    for spec in (dict(sizes=(4, 6, 7, 5), hidden=("tanh", "softmax"), output="identity", loss="mse"),
                 dict(sizes=(4, 6, 5), hidden="gelu", output="softmax", loss="cross_entropy")):
        found, records = causes(s.LayerNetAdapter(), target="labels" if spec["loss"] == "cross_entropy" else "dense",
                                **spec)
        assert found == [] and all(r.status == "pass" for r in records)


@EXPOSE
def test_relu_prime_one_at_zero_is_wrong_only_at_kinks_with_torchs_derivative(expose):
    def dead_unit(state):  # unit 2 of layer 0 has z == 0 for every input: ReLU's kink, exactly
        state["layers.0.weight"][2] = 0
        state["layers.0.bias"][2] = 0
        return state

    impl = s.LayerNetAdapter(expose=expose, relu_backward=s.relu_backward_ge)
    found, _ = causes(impl, state=dead_unit, sizes=(4, 6, 7, 5), hidden=("relu", "tanh"), output="identity",
                      loss="mse")
    assert kinds(found) == {("kink", "layers.0 (relu backward)")}
    swapped(found, expose, "relu, relu_backward")
    assert "relu'(0) = 0" in found[0].right and f"({N} pre-activations are exactly 0 there)" in found[0].evidence


def test_each_failing_record_carries_the_causes_that_explain_it():
    impl = s.LayerNetAdapter(expose=False, mse_grad=s.mse_grad_of_a_sum,
                             softmax_backward=s.softmax_backward_elementwise)
    _, records = causes(impl, sizes=(4, 6, 7, 5), hidden=("tanh", "softmax"), output="identity", loss="mse")
    by_param = {r.param: {c.kind for c in decode(r.diagnosis)} for r in records if r.status == "fail"}
    assert by_param["layers.2.weight"] == {"factor"}
    assert by_param["layers.0.bias"] == by_param["layers.1.weight"] == {"factor", "softmax_s1s"}
    assert np.isclose(sum(n for _, n, _ in group(records)), 6 + 4)  # 6 factor rows, 4 softmax rows


def test_each_reproducer_runs_on_its_own_and_fails_on_a_few_rows():
    impl = s.LayerNetAdapter(mse_grad=s.mse_grad_of_a_sum, softmax_backward=s.softmax_backward_elementwise)
    found, _ = causes(impl, sizes=(4, 6, 7, 5), hidden=("tanh", "softmax"), output="identity", loss="mse")
    for cause in found:
        scope = {"impl": impl}  # not loaded by --impl: the snippet names it, the reader defines it
        assert "import numpy as np" in cause.reproducer and "np.testing.assert_allclose" in cause.reproducer
        with pytest.raises(AssertionError):  # it reproduces the failure, on a few rows
            exec(cause.reproducer, scope)  # noqa: S102 - the snippet is what a user pastes
        assert len(scope["x"]) <= 4


@pytest.mark.parametrize("k, n, c, loss, formula", [
    (16.0, 8, 4, "mse", "N · C · 1/2"),  # ½‖a − y‖² summed: N·C/2, although 16 = 2·N too
    (8.0, 8, 4, "cross_entropy", "N"), (15.0, 6, 5, "mse", "N · C · 1/2"), (0.5, 6, 5, "mse", "1/2"),
    (1 / 6, 6, 5, "cross_entropy", "1/N"), (7.0, 6, 5, "mse", ""),
])
def test_factors_are_named_over_n_c_and_2(k, n, c, loss, formula):
    from scratchnet_reference.diagnosis.factors import name_factor

    named, _ = name_factor(k, n, c, loss, "mean")
    assert named.split(" (N = ")[0] == formula


def test_a_factor_equal_to_one_is_not_a_factor():
    from scratchnet_reference.diagnosis.factors import name_factor

    assert name_factor(1.0, 1, 1, "mse", "mean") == ("", "")  # N = C = 1: nothing to name
    assert name_factor(2.0, 1, 1, "mse", "mean")[0].startswith("2 (")


def test_one_mistake_at_different_layers_in_different_combinations_is_one_root_cause():
    from types import SimpleNamespace

    from scratchnet_reference.diagnosis.causes import RootCause, encode

    what = "softmax's derivative taken elementwise: δ = g ⊙ s(1 − s)"
    wheres = [dict(layers=(2,), swapped=("softmax", "softmax_backward")), dict(layers=(0, 1))]
    records = [SimpleNamespace(status="fail", diagnosis=encode([RootCause("softmax_s1s", what, op="softmax",
                                                                          part="backward", **where)]),
                               hidden=h, output="softmax", loss="mse", reduction="mean", dtype="float64", optimizer="")
               for where, h in zip(wheres, ("tanh,tanh", "softmax,softmax"))]
    [(cause, rows, combos)] = group(records)
    assert (cause.where, rows, combos) == ("layers.0, 1, 2 (softmax backward) [your softmax, softmax_backward]", 2, 2)


def _record(check, causes, hidden="tanh,tanh", optimizer="", gd_mode=""):
    from types import SimpleNamespace

    from scratchnet_reference.diagnosis.causes import encode

    return SimpleNamespace(status="fail", diagnosis=encode(causes), check=check, hidden=hidden, output="softmax",
                           loss="mse", reduction="mean", dtype="float64", device="cpu", optimizer=optimizer,
                           gd_mode=gd_mode)


def test_a_training_run_broken_by_wrong_gradients_is_counted_under_their_root_cause():
    from scratchnet_reference.diagnosis.causes import RootCause

    factor = RootCause("factor", "off by a constant factor: yours = 2 × torch's", area="loss gradient (every layer)")
    broken = [RootCause("training_gradients", "breaks at the very first update", area=f"training: sgd(lr=0.1) {mode}")
              for mode in ("full_batch", "stochastic")]
    update = RootCause("update_rule", "the update rule is wrong", area="training: adam full_batch")
    records = [_record("gradient", [factor]), _record("loss", [factor]),
               *[_record("training_step", [b], optimizer="sgd(lr=0.1)") for b in broken],
               _record("training_step", [update], optimizer="adam"),  # gradients right: its own cause
               _record("training_step", [broken[0]], hidden="relu,relu", optimizer="sgd(lr=0.1)")]  # no cause found
    listed = {cause.kind: (cause, rows, combos) for cause, rows, combos in group(records)}
    assert sorted(listed) == ["factor", "training_gradients", "update_rule"]
    cause, rows, combos = listed["factor"]
    assert (rows, combos) == (4, 1)
    assert "lockstep training of this model breaks (sgd(lr=0.1) full_batch, sgd(lr=0.1) stochastic)" in cause.evidence
    assert listed["training_gradients"][0].where == "training: sgd(lr=0.1) full_batch"
    assert listed["training_gradients"][1:] == (1, 1) and listed["update_rule"][1:] == (1, 1)


@pytest.mark.parametrize("passes_with, expected", [
    (lambda swapped: {"a", "b"} <= swapped, [("a",), ("b",)]),  # two wrong ops: each its own cause
    (lambda swapped: bool({"a", "b"} & swapped), [("a", "b")]),  # either swap clears it: the pair
    (lambda swapped: False, None),  # the failure lies outside the exposed ops
])
def test_culprits_leave_one_out_then_pairs(passes_with, expected):
    from scratchnet_reference.diagnosis.substitution import culprits

    groups = [("a",), ("b",), ("c",)]
    assert culprits(object(), lambda variant: not passes_with(set(variant.names)), groups) == expected


def test_a_factor_is_worded_for_what_carries_it_the_gradient_or_the_loss_value():
    from scratchnet_reference.diagnosis.factors import name_factor

    # N = 8, C = 4; torch's MSE mean divides by N·C = 32
    assert name_factor(4.0, 8, 4, "mse", "mean")[1] == (
        "your loss's gradient divides by N where torch's reduction='mean' for mse divides by N·C")
    assert name_factor(4.0, 8, 4, "mse", "mean", of="loss")[1] == (
        "your loss divides by N where torch's reduction='mean' for mse divides by N·C")
    assert name_factor(32.0, 8, 4, "mse", "mean")[1].startswith("your loss's gradient is that of a sum, ")
    assert name_factor(32.0, 8, 4, "mse", "mean", of="loss")[1].startswith("your loss is a sum, ")
    half = name_factor(0.5, 8, 3, "cross_entropy", "mean", of="loss")[1]
    assert half == "your loss is half of torch's (a ½ too many)" and "gradient" not in half


def test_a_missing_two_of_the_mse_derivative_is_the_gradients_own_when_the_loss_value_agrees():
    from scratchnet_reference.diagnosis.factors import name_factor

    # yours = ½ × torch's: (a − y)/(N·C) where torch's d/da of mean((a − y)²) is 2(a − y)/(N·C)
    assert name_factor(0.5, 8, 4, "mse", "mean", value_agrees=True)[1] == (
        "your gradient lacks the 2 of ∂(a − y)²/∂a = 2(a − y)")
    # the loss value itself ½(a − y)²: the ½ is the loss's, and the gradient follows it
    assert name_factor(0.5, 8, 4, "mse", "mean")[1].startswith("a ½ in your loss (½(a − y)²): torch's MSE has none")
