"""styles: the bindings between the harness's parameters and a user's arrays, the gradient read
out of a self-updating backward pass, columns and per-sample averages."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.byo import styles

rng = np.random.default_rng(0)


class Dense:
    """A layer storing W (out, in) and b as a column, updating itself in backward."""

    def __init__(self, n_in, n_out):
        self.weights, self.bias = rng.normal(size=(n_out, n_in)), rng.normal(size=(n_out, 1))

    def forward(self, x):
        self.x = x
        return self.weights @ x + self.bias

    def backward(self, g, learning_rate):
        dx = self.weights.T @ g
        self.weights -= learning_rate * (g @ self.x.T)
        self.bias -= learning_rate * g
        return dx


def test_layers_round_trip_in_the_harness_layout():
    layers = [Dense(3, 4), Dense(4, 2)]
    params = styles.Params.of_layers(layers, "weights", "bias")
    state = params.state()
    assert {k: v.shape for k, v in state.items()} == {"layers.0.weight": (4, 3), "layers.0.bias": (4,),
                                                      "layers.1.weight": (2, 4), "layers.1.bias": (2,)}
    new = {k: v + 1 for k, v in state.items()}
    params.load(new)
    assert layers[0].bias.shape == (4, 1) and np.array_equal(layers[0].bias[:, 0], new["layers.0.bias"])
    assert all(np.array_equal(params.state()[k], new[k]) for k in new)


def test_transposed_dict_bindings_store_in_out_and_read_back_out_in():
    net = {"W1": np.zeros((3, 4)), "b1": np.zeros(4)}
    params = styles.Params.of_dict(net, "W{}", "b{}", 1, transposed=True)
    w = np.arange(12.0).reshape(4, 3)  # harness: (out, in)
    params.load({"layers.0.weight": w, "layers.0.bias": np.ones(4)})
    assert np.array_equal(net["W1"], w.T) and np.array_equal(params.state()["layers.0.weight"], w)
    assert np.array_equal(params.to_harness([net["W1"], net["b1"]])["layers.0.weight"], w)


def test_lists_stay_bound_when_the_network_replaces_them():
    class Net:
        weights = [np.zeros((2, 3))]
        biases = [np.zeros((2, 1))]

    net = Net()
    params = styles.Params.of_lists(net, "weights", "biases")
    net.weights = [np.ones((2, 3))]  # e.g. ``self.weights = [w - eta * nw ...]``
    assert np.array_equal(params.state()["layers.0.weight"], np.ones((2, 3)))


def test_a_wrong_shape_is_refused_with_both_shapes():
    params = styles.Params.of_layers([Dense(3, 4)], "weights", "bias")
    with pytest.raises(ValueError, match=r"weights is \(4, 3\), cannot store a weight of shape \(3, 4\)"):
        params.load({"layers.0.weight": np.zeros((3, 4)), "layers.0.bias": np.zeros(4)})
    with pytest.raises(KeyError, match="state lacks"):
        params.load({})


def test_read_update_recovers_the_gradient_and_restores_the_weights():
    layer = Dense(5, 3)
    layer.weights *= 1e6  # gradients 10⁶–10⁷ times smaller than the weights: rounding must stay negligible
    params = styles.Params.of_layers([layer], "weights", "bias")
    before = params.state()
    x, g = rng.normal(size=(5, 1)), rng.normal(size=(3, 1))
    layer.forward(x)
    grads = params.read_update(lambda lr: layer.backward(g, lr))
    np.testing.assert_allclose(grads["layers.0.weight"], g @ x.T, rtol=1e-9, atol=0)
    np.testing.assert_allclose(grads["layers.0.bias"], g[:, 0], rtol=1e-9, atol=0)
    assert all(np.array_equal(params.state()[k], before[k]) for k in before)


def test_columns_targets_softmax_and_the_mean_over_samples():
    x = np.arange(6.0).reshape(2, 3)
    assert [c.shape for c in styles.columns(x)] == [(3, 1), (3, 1)]
    assert np.array_equal(styles.targets(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="labels must be a 1-D integer array"):
        styles.one_hot(np.array([0.5]), 3)
    p = styles.softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.25, 0.75]])
    loss, grads = styles.mean_over_samples([(1.0, {"w": np.ones(2)}), (3.0, {"w": np.zeros(2)})])
    assert loss == 2.0 and np.array_equal(grads["w"], [0.5, 0.5])
    with pytest.raises(ValueError, match="per_sample is empty"):
        styles.mean_over_samples([])


def test_model_base_steps_plain_sgd_and_refuses_other_optimizers():
    class M(styles.Model):
        def __init__(self):
            self.layer = Dense(2, 1)
            self.params = styles.Params.of_layers([self.layer], "weights", "bias")

        def gradients(self, x, y):
            return 0.5, {"layers.0.weight": np.ones((1, 2)), "layers.0.bias": np.ones(1)}

    m = M()
    before = m.state_dict()
    with pytest.raises(NotImplementedError, match="momentum"):
        m.configure_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9})
    m.configure_optimizer({"name": "sgd", "lr": 0.1})
    assert m.loss_and_grads(None, None)[0] == 0.5
    m.step()
    np.testing.assert_allclose(m.state_dict()["layers.0.weight"], before["layers.0.weight"] - 0.1)


def test_layer_op_and_loss_op_give_the_op_checks_signatures():
    class ColumnSoftmax:  # one column at a time, backward(grad, learning_rate)
        def forward(self, x):
            self.s = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
            return self.s

        def backward(self, g, learning_rate):
            return self.s * (g - (g * self.s).sum())

    forward, backward = styles.layer_op(ColumnSoftmax, 0.0, per_sample=True)
    z, g = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    s = styles.softmax(z)
    np.testing.assert_allclose(forward(z), s)
    np.testing.assert_allclose(backward(z, s, g), s * (g - (g * s).sum(axis=1, keepdims=True)))

    class Mse:
        def forward(self, p, y):
            self.d = p - y
            return np.mean(self.d ** 2)

        def backward(self):
            return 2 * self.d / self.d.size

    value, grad = styles.loss_op(Mse)
    assert value(np.ones((2, 2)), np.zeros((2, 2))) == 1.0
    np.testing.assert_allclose(grad(np.ones((2, 2)), np.zeros((2, 2))), np.full((2, 2), 0.5))


def test_op_layers_stand_in_for_a_networks_own_layers_under_substitution():
    own = {"tanh": np.tanh, "tanh_backward": lambda z, a, g: g * (1 - a ** 2)}
    assert styles.substituted(None, own, "tanh", "tanh_backward") is None
    assert styles.substituted({"relu": abs}, own, "tanh", "tanh_backward") is None
    forward, backward = styles.substituted({"tanh_backward": lambda z, a, g: 2 * g}, own, "tanh", "tanh_backward")
    assert forward is np.tanh and np.array_equal(backward(0, 0, np.ones(2)), [2.0, 2.0])

    seen = []
    layer = styles.OpLayer(lambda z: (seen.append(z.shape), np.tanh(z))[1], own["tanh_backward"], columns=True)
    z, g = rng.normal(size=(4, 1)), rng.normal(size=(4, 1))  # one column vector
    np.testing.assert_allclose(layer.forward(z), np.tanh(z))
    np.testing.assert_allclose(layer.backward(g, 0.1), g * (1 - np.tanh(z) ** 2))  # a learning rate is ignored
    assert seen == [(1, 4)]  # the op saw a row

    loss = styles.OpLoss(lambda p, y: float(np.mean((p - y) ** 2)), lambda p, y: 2 * (p - y) / p.size)
    assert loss(np.ones(2), np.zeros(2)) == 1.0 and np.array_equal(loss.backward(), [1.0, 1.0])

    built = []
    impl = styles.Implementation("x", lambda spec, state, ops=None: built.append(ops), ops={"tanh": np.tanh})
    impl.build(None, {})
    impl.build(None, {}, ops={"tanh": np.sin})
    assert built == [None, {"tanh": np.sin}]
