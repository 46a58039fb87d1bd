"""The harness's gradient checks back-propagate a drawn upstream: the loss's gradient on the batch's
drawn targets (``compare_model`` differentiates the real loss, never a ``.sum()``), so a row-wise VJP
that is right only for uniform upstreams — softmax's ``a ⊙ (g − mean g)`` for ``a ⊙ (g − ⟨g, a⟩)`` —
fails."""

from __future__ import annotations

import pytest
from scratchnet_reference import ScratchnetImplementation, compare_model
from scratchnet_reference.core.matrix import make_batch

from scratchnet import ModelSpec, Network
from scratchnet.activations import Softmax


class MeanSoftmax(Softmax):
    def backward(self, z, a, grad):
        return a * (grad - grad.mean(axis=1, keepdims=True))


def mean_softmax_network(spec: ModelSpec) -> Network:
    net = Network(spec)
    for layer in net.layers:
        if layer.activation.name == "softmax":
            layer.activation = MeanSoftmax()
    return net


@pytest.mark.parametrize("loss, target", [("mse", "dense"), ("l1", "dense")])
def test_a_softmax_vjp_right_only_for_uniform_upstreams_fails_the_gradient_records(loss, target):
    spec = ModelSpec((3, 5, 4), hidden="tanh", output="softmax", loss=loss, dtype="float64", seed=2)
    x, y = make_batch(spec, 6, seed=5, target=target)
    records = compare_model(ScratchnetImplementation("mean-softmax", mean_softmax_network), spec, x, y, fd="never")
    gradients = {r.param: r.status for r in records if r.check == "gradient"}
    assert gradients and set(gradients.values()) == {"fail"}, gradients
    assert {r.status for r in records if r.check in ("forward", "loss")} == {"pass"}
    right = compare_model(ScratchnetImplementation("scratchnet", Network), spec, x, y, fd="never")
    assert {r.status for r in right} == {"pass"}
