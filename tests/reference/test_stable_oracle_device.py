"""The stable oracle computes on the logits' own device: its masks (the off-diagonal of softmax's
Jacobian) are made there too. Checked on torch's ``meta`` device (shapes only, no GPU needed): a mask
left on the CPU cannot meet a tensor elsewhere."""

from __future__ import annotations

import pytest
from scratchnet_reference.core.stable import STABLE_PAIRS, stable_loss_and_logit_grad
from scratchnet_reference.core.torch_import import torch_module

torch = torch_module()  # configured by the harness


@pytest.mark.parametrize("output, loss", sorted(STABLE_PAIRS))
def test_loss_and_gradient_stay_on_the_logits_device(output, loss):
    z = torch.empty((4, 3), dtype=torch.float64, device="meta")
    target = torch.empty((4, 3), dtype=torch.float64, device="meta")
    spec = {"name": loss, "label_smoothing": 0.0}
    value, grad = stable_loss_and_logit_grad(output, spec, "mean", z, target)
    assert value.device.type == "meta" and grad.device.type == "meta"
    assert tuple(value.shape) == () and tuple(grad.shape) == (4, 3)
