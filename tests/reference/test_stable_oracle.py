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
