"""torch's fused sigmoid + binary cross-entropy in the mapping (``BCE with logits``): integer class labels
are one-hot encoded at the logits' width, exactly as the float one-hot target."""

from __future__ import annotations

from scratchnet_reference.core import mapping
from scratchnet_reference.core.torch_import import torch_module

torch = torch_module()  # configured by the harness


def test_labels_and_their_one_hot_give_the_same_loss():
    fn = mapping.FUSED_LOSSES[("sigmoid", "binary_cross_entropy")]
    z = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 0.25, 1.0]], dtype=torch.float64)
    labels = torch.tensor([2, 0])
    one_hot = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    got = fn(z, labels, {}, "none")
    assert torch.equal(got, fn(z, one_hot, {}, "none"))
    assert torch.equal(got, torch.nn.functional.binary_cross_entropy_with_logits(z, one_hot, reduction="none"))
