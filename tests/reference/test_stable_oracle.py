"""The stable float64 oracle's input contract: binary cross-entropy takes dense float rows of the
logits' shape (what ``prepare_batch`` makes for it); labels, which no caller passes, are refused by
name rather than read through a branch that nothing exercises."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.core.stable import stable_loss_and_logit_grad


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_bce_refuses_labels_and_misshapen_rows(output, torch):
    z = torch.tensor(np.random.default_rng(0).normal(size=(4, 3)))
    loss = {"name": "binary_cross_entropy"}
    with pytest.raises(ValueError, match=r"binary cross-entropy's target must be float rows of the logits' "
                                         r"shape \(4, 3\), got torch.int64 of shape \(4,\)"):
        stable_loss_and_logit_grad(output, loss, "mean", z, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"got torch.float64 of shape \(4, 2\)"):
        stable_loss_and_logit_grad(output, loss, "mean", z, torch.zeros(4, 2, dtype=torch.float64))


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_matches_torch_where_torch_is_exact(output, reduction, torch):
    """Moderate logits (no clamp active): the oracle's loss and ∂L/∂z are torch's modular BCE's, with a
    drawn (non-uniform) target."""
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    y = torch.tensor(rng.uniform(size=(5, 3)))
    p = torch.sigmoid(z) if output == "sigmoid" else torch.softmax(z, dim=1)
    expected = torch.nn.functional.binary_cross_entropy(p, y, reduction=reduction)
    (grad,) = torch.autograd.grad(expected, z)
    loss, dz = stable_loss_and_logit_grad(output, {"name": "binary_cross_entropy"}, reduction, z, y)
    np.testing.assert_allclose(float(loss), float(expected.detach()), rtol=1e-13)
    np.testing.assert_allclose(dz.numpy(), grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_with_labels_and_smoothing_matches_torch_in_float64(reduction, torch):
    """Labels are one-hot encoded in the logits' dtype (float64): the smoothed target 0.9·y + 0.1/C
    in float32 would move the loss by ~1e-8 relative."""
    rng = np.random.default_rng(2)
    z = torch.tensor(rng.normal(size=(6, 4)) * 3, requires_grad=True)
    labels = torch.tensor(rng.integers(0, 4, 6))
    expected = torch.nn.functional.cross_entropy(z, labels, label_smoothing=0.1, reduction=reduction)
    (grad,) = torch.autograd.grad(expected, z)
    loss, dz = stable_loss_and_logit_grad("softmax", {"name": "cross_entropy", "label_smoothing": 0.1}, reduction,
                                          z, labels)
    np.testing.assert_allclose(float(loss), float(expected.detach()), rtol=1e-14)
    np.testing.assert_allclose(dz.numpy(), grad.numpy(), rtol=1e-12, atol=1e-16)


def test_stable_forward_backward_is_torchs_modular_path_where_that_is_exact(torch):
    """``torch_stable_float64`` on a 3-layer sigmoid + BCE network (moderate logits, no clamp): output,
    loss and every gradient equal torch's own modular float64 pass, every term scale its fused pass's
    (the hidden layers' upstream gradients line up with their layers)."""
    from scratchnet_reference.core.compare import prepare_batch, stable_forward_backward, torch_forward_backward
    from scratchnet_reference.core.matrix import make_batch
    from scratchnet_reference.core.protocol import initial_state
    from scratchnet_reference.core.torch_model import build_torch_model

    from scratchnet import ModelSpec

    spec = ModelSpec((3, 4, 5, 2), hidden="tanh", output="sigmoid", loss="binary_cross_entropy", seed=3)
    x, y = make_batch(spec, 6, seed=1, target="dense")
    xs, target = prepare_batch(spec, x, y)
    state = initial_state(spec)
    stable = stable_forward_backward(spec, state, xs, target, "cpu")
    model = build_torch_model(spec, state)
    ref = torch_forward_backward(model, spec, "modular", torch.tensor(xs), torch.tensor(target))
    assert stable.oracle == "torch_stable_float64" and stable.broken == "" and ref.broken == ""
    np.testing.assert_allclose(stable.output, ref.output, rtol=1e-14)
    assert stable.loss == pytest.approx(ref.loss, rel=1e-13)
    assert set(stable.grads) == set(ref.grads) == {f"layers.{k}.{w}" for k in range(3) for w in ("weight", "bias")}
    for name, grad in ref.grads.items():
        np.testing.assert_allclose(stable.grads[name], grad, rtol=1e-11, atol=1e-15, err_msg=name)
    # term scales start from ∂L/∂z — torch's fused flavour's upstream (the modular one starts from ∂L/∂a)
    fused = torch_forward_backward(model, spec, "fused", torch.tensor(xs), torch.tensor(target))
    assert set(stable.term_scales) == set(fused.term_scales)
    for name, scale in fused.term_scales.items():
        assert stable.term_scales[name] == pytest.approx(scale, rel=1e-9), name


def test_stable_forward_backward_names_a_non_finite_result(torch):
    from scratchnet_reference.core.compare import prepare_batch, stable_forward_backward
    from scratchnet_reference.core.protocol import initial_state

    from scratchnet import ModelSpec

    spec = ModelSpec((2, 3, 2), hidden="relu", output="sigmoid", loss="binary_cross_entropy", seed=1)
    state = {k: v.copy() for k, v in initial_state(spec).items()}
    state["layers.0.weight"][0, 0] = np.inf
    xs, target = prepare_batch(spec, np.ones((2, 2)), np.array([[0.5, 0.5], [0.2, 0.9]]))
    result = stable_forward_backward(spec, state, xs, target, "cpu")
    assert result.broken == "torch produced NaN/inf"


def test_a_pair_without_a_stable_form_is_refused_by_name(torch):
    z = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^no stable form of softmax \+ mse; known: \[\('sigmoid', "
                                         r"'binary_cross_entropy'\), \('sigmoid', 'cross_entropy'\), "
                                         r"\('softmax', 'binary_cross_entropy'\), \('softmax', 'cross_entropy'\)\]$"):
        stable_loss_and_logit_grad("softmax", {"name": "mse"}, "mean", z, z)
