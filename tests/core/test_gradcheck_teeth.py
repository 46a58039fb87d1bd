"""The gradient checker has teeth: a deliberately wrong derivative is flagged, on exactly the
parameters it corrupts, and the correct network passes."""

import numpy as np
import pytest

from scratchnet import ModelSpec, Network, activations, losses
from scratchnet.fused import FUSED_PAIRS
from scratchnet.gradcheck import assert_gradients_close, check_network_gradients, numerical_vjp

from .helpers import assert_fd_close

ALL = {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.2.weight", "layers.2.bias"}


class ElementwiseSoftmax(activations.Softmax):
    """The classic mistake: ``s(1 − s)`` drops the cross terms of ``diag(s) − s sᵀ``."""

    def backward(self, z, a, grad):
        return grad * a * (1 - a)


class TanhMissingSquare(activations.Tanh):
    def backward(self, z, a, grad):
        return grad * (1 - a)


def network(hidden, output="identity", loss="mse", sizes=(3, 4, 4, 2)):
    net = Network(ModelSpec(sizes, hidden=hidden, output=output, loss=loss, seed=2))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, sizes[0]))
    y = rng.integers(0, sizes[-1], 5) if net.loss_fn.per_sample else rng.normal(size=(5, sizes[-1]))
    return net, x, y


def flagged(net, x, y) -> set[str]:
    return {c.name for c in check_network_gradients(net, x, y) if not c.passed}


def test_correct_networks_pass():
    assert flagged(*network(["softmax", "tanh"], "identity", "mse")) == set()
    assert flagged(*network(["relu", "tanh"], "softmax", "cross_entropy")) == set()


def test_elementwise_softmax_backward_is_flagged_below_it():
    net, x, y = network(["softmax", "tanh"])
    net.layers[0].activation = ElementwiseSoftmax()
    assert flagged(net, x, y) == {"layers.0.weight", "layers.0.bias"}


def test_tanh_derivative_without_the_square_is_flagged_below_it():
    net, x, y = network(["relu", "tanh"])
    net.layers[1].activation = TanhMissingSquare()
    assert flagged(net, x, y) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}


def _corrupt(layer, *, bias=None, weight=None):
    original = layer.backward_from_z

    def wrong(delta, need_input_grad=True):
        out = original(delta, need_input_grad)
        if bias is not None:
            layer.grad_bias[...] = bias(delta)
        if weight is not None:
            layer.grad_weight[...] = weight(layer.grad_weight)
        return out

    layer.backward_from_z = wrong


def test_bias_gradient_averaged_instead_of_summed_is_flagged_alone():
    net, x, y = network(["tanh", "tanh"])
    _corrupt(net.layers[1], bias=lambda delta: delta.mean(axis=0))
    assert flagged(net, x, y) == {"layers.1.bias"}


def test_a_one_in_ten_thousand_error_in_one_weight_is_flagged_alone():
    net, x, y = network(["tanh", "tanh"])

    def nudge(g):
        g = g.copy()
        g[0, 0] *= 1 + 1e-4
        return g

    _corrupt(net.layers[2], weight=nudge)
    assert flagged(net, x, y) == {"layers.2.weight"}


def test_fused_gradient_missing_the_batch_mean_is_flagged_everywhere(monkeypatch):
    net, x, y = network(["relu", "tanh"], "softmax", "cross_entropy")
    right = FUSED_PAIRS[("softmax", "cross_entropy")]

    def unscaled(loss, z, a, target):
        value, grad = right(loss, z, a, target)
        return value, grad * z.shape[0]

    monkeypatch.setitem(FUSED_PAIRS, ("softmax", "cross_entropy"), unscaled)
    assert flagged(net, x, y) == ALL


def test_mse_gradient_missing_its_factor_two_is_flagged_everywhere(monkeypatch):
    net, x, y = network(["relu", "tanh"])
    monkeypatch.setattr(losses.MSELoss, "gradient", lambda self, p, t: (p - t) / self.divisor(p))
    assert flagged(net, x, y) == ALL


def test_assert_gradients_close_names_the_wrong_parameters():
    net, x, y = network(["softmax", "tanh"])
    net.layers[0].activation = ElementwiseSoftmax()
    with pytest.raises(AssertionError, match=r"layers\.0\.weight: WRONG tol_ratio=.*\n  layers\.0\.bias: WRONG"):
        assert_gradients_close(check_network_gradients(net, x, y))


@pytest.mark.parametrize(("wrong", "rowwise"), [
    (ElementwiseSoftmax(), True),
    (TanhMissingSquare(), False),
])
def test_activation_fd_helper_flags_wrong_derivatives(wrong, rowwise):
    z = np.random.default_rng(1).normal(size=(4, 5))
    g = np.random.default_rng(2).normal(size=(4, 5))
    numeric = numerical_vjp(wrong.forward, z, g, rowwise=rowwise)
    with pytest.raises(AssertionError, match="WRONG"):
        assert_fd_close("teeth", wrong.backward(z, wrong.forward(z), g), numeric, recorded=False)
