"""The torch functional losses of the mapping (``mse``, ``l1``, ``huber``, ``smooth_l1``, BCE): a float
target is taken as it is, integer class labels are one-hot encoded at the output's width first.

``MODULAR_LOSSES`` is built once, at import; ``_functional`` is called here so the wrapper it builds is
what is checked."""

from __future__ import annotations

from scratchnet_reference.core import mapping
from scratchnet_reference.core.torch_import import torch_module

torch = torch_module()  # configured by the harness

OUT = torch.tensor([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]], dtype=torch.float64)


def test_float_targets_are_used_as_given_and_labels_are_one_hot():
    F = torch.nn.functional
    mse = mapping._functional("mse_loss")
    soft = torch.tensor([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(mse(OUT, soft, {}, "sum"), F.mse_loss(OUT, soft, reduction="sum"))
    labels = torch.tensor([1, 0])
    one_hot = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(mse(OUT, labels, {}, "mean"), F.mse_loss(OUT, one_hot))
    huber = mapping._functional("huber_loss", delta="delta")
    assert torch.equal(huber(OUT, labels, {"delta": 0.1}, "none"), F.huber_loss(OUT, one_hot, reduction="none",
                                                                                delta=0.1))
