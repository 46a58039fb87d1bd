"""Networks written the way strangers write them — not the way this project would — with their
adapters, for the diagnosis tests. Nothing here imports scratchnet's numerics.

* :class:`LayerNet` — a framework of layer objects (``x @ W`` with ``W`` stored ``(in, out)``), whose
  ``backward`` updates the weights itself when given a learning rate; every op it uses comes from an
  ``ops`` dict (``relu(z)``, ``relu_backward(z, a, g)``, ``mse(p, y)``, ``mse_grad(p, y)``,
  ``softmax_cross_entropy_grad(z, y)``), which its adapter exposes for diagnosis by substitution.
* :class:`ColumnNet` — a textbook network on column vectors, trained one sample at a time, with
  the quadratic cost ``½‖a − y‖²`` summed over the batch.
"""

from __future__ import annotations

import math

import numpy as np

# -- the ops of LayerNet (correct, unless a variant below replaces one) ---------------------------


def tanh(z):
    return np.tanh(z)


def tanh_backward(z, a, g):
    return g * (1 - a ** 2)


def relu(z):
    return np.maximum(z, 0)


def relu_backward(z, a, g):
    return g * (z > 0)


def gelu(z):
    return 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def gelu_backward(z, a, g):
    pdf = np.exp(-z ** 2 / 2) / math.sqrt(2 * math.pi)
    return g * (0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2))) + z * pdf)


def identity(z):
    return z


def identity_backward(z, a, g):
    return g


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(z, a, g):
    return a * (g - (g * a).sum(axis=1, keepdims=True))


def mse(p, y):
    return np.mean((p - y) ** 2)


def mse_grad(p, y):
    return 2 * (p - y) / p.size


def softmax_cross_entropy_grad(z, y):
    return (softmax(z) - y) / len(z)


OPS = {f.__name__: f for f in (tanh, tanh_backward, relu, relu_backward, gelu, gelu_backward, identity,
                               identity_backward, softmax, softmax_backward, mse, mse_grad,
                               softmax_cross_entropy_grad)}

# -- mistakes strangers make ----------------------------------------------------------------------


def mse_grad_of_a_sum(p, y):
    """The loss reports the mean, the gradient is that of the sum."""
    return 2 * (p - y)


def softmax_backward_elementwise(z, a, g):
    return g * a * (1 - a)


def gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))


def gelu_tanh_backward(z, a, g):
    u = math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)
    du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * z ** 2)
    return g * (0.5 * (1 + np.tanh(u)) + 0.5 * z * (1 - np.tanh(u) ** 2) * du)


def relu_backward_ge(z, a, g):
    return g * (z >= 0)


# -- LayerNet ---------------------------------------------------------------------------------------


class Dense:
    def __init__(self, n_in, n_out, backward=None):
        self.W, self.b = np.zeros((n_in, n_out)), np.zeros(n_out)
        self.op = backward  # dense_backward(x, W (out, in), b, g) -> (dx, dW (out, in), db), if given

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, grad, lr=None):
        if self.op is not None:
            out, dW, self.db = self.op(self.x, self.W.T, self.b, grad)
            self.dW = np.asarray(dW).T
        else:
            self.dW, self.db = self.x.T @ grad, grad.sum(axis=0)
            out = grad @ self.W.T
        if lr:
            self.W -= lr * self.dW
            self.b -= lr * self.db
        return out


class Activation:
    def __init__(self, name, ops):
        self.f, self.df = ops[name], ops[name + "_backward"]

    def forward(self, z):
        self.z, self.a = z, self.f(z)
        return self.a

    def backward(self, grad, lr=None):
        return self.df(self.z, self.a, grad)


class LayerNet:
    def __init__(self, sizes, activations, loss, ops):
        self.layers = []
        for n_in, n_out, act in zip(sizes[:-1], sizes[1:], activations):
            self.layers += [Dense(n_in, n_out, ops.get("dense_backward")), Activation(act, ops)]
        self.loss, self.ops = loss, ops
        self.fused = loss == "cross_entropy" and activations[-1] == "softmax"

    def predict(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def train_step(self, x, y, lr=None):
        out = self.predict(x)
        if self.fused:  # the softmax layer is skipped: the loss takes the logits
            z = self.layers[-1].z
            value = -np.mean(np.sum(y * np.log(out), axis=1))
            grad, layers = self.ops["softmax_cross_entropy_grad"](z, y), self.layers[:-1]
        else:
            value, grad, layers = self.ops[self.loss](out, y), self.ops[self.loss + "_grad"](out, y), self.layers
        for layer in reversed(layers):
            grad = layer.backward(grad, lr)
        return value


class LayerNetAdapter:
    """The adapter a user writes for :class:`LayerNet`: weights transposed in and out, gradients read
    from the layers after a backward pass without a learning rate; ``ops`` exposed (``expose``) for
    diagnosis by substitution."""

    def __init__(self, name="layer-net", expose=True, **mistakes):
        self.name, self.own = name, {**OPS, **mistakes}
        if expose:
            self.ops = self.own

    def build(self, spec, state, ops=None):
        return _LayerModel(spec, state, {**self.own, **(ops or {})})


class _LayerModel:
    def __init__(self, spec, state, ops):
        names = [h["name"] for h in spec.hidden] + [spec.output["name"]]
        self.net = LayerNet(spec.sizes, names, spec.loss["name"], ops)
        self.dense = self.net.layers[::2]
        self.load_state_dict(state)

    def load_state_dict(self, state):
        for k, d in enumerate(self.dense):
            d.W, d.b = np.array(state[f"layers.{k}.weight"], dtype=float).T, np.array(state[f"layers.{k}.bias"])

    def forward(self, x):
        return self.net.predict(x)

    def loss_and_grads(self, x, y):
        if y.ndim == 1:
            y = np.eye(self.dense[-1].W.shape[1])[y]
        loss = self.net.train_step(x, y)
        grads = {}
        for k, d in enumerate(self.dense):
            grads[f"layers.{k}.weight"], grads[f"layers.{k}.bias"] = d.dW.T, d.db
        return loss, grads


# -- ColumnNet: the textbook, one column vector at a time --------------------------------------------


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class ColumnNet:
    def __init__(self, sizes, hidden):
        self.weights = [np.zeros((o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros((o, 1)) for o in sizes[1:]]
        self.hidden = hidden

    def act(self, z, last):
        return z if last else (np.tanh(z) if self.hidden == "tanh" else sigmoid(z))

    def act_prime(self, z, last):
        return np.ones_like(z) if last else (1 - np.tanh(z) ** 2 if self.hidden == "tanh"
                                            else sigmoid(z) * (1 - sigmoid(z)))

    def feedforward(self, a):
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = self.act(w @ a + b, i == len(self.weights) - 1)
        return a

    def backprop(self, x, y):
        activation, activations, zs = x, [x], []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = w @ activation + b
            zs.append(z)
            activation = self.act(z, i == len(self.weights) - 1)
            activations.append(activation)
        delta = (activations[-1] - y) * self.act_prime(zs[-1], True)  # C = ½‖a − y‖²
        nabla_b, nabla_w = [None] * len(self.biases), [None] * len(self.weights)
        nabla_b[-1], nabla_w[-1] = delta, delta @ activations[-2].T
        for l in range(2, len(self.weights) + 1):
            delta = (self.weights[-l + 1].T @ delta) * self.act_prime(zs[-l], False)
            nabla_b[-l], nabla_w[-l] = delta, delta @ activations[-l - 1].T
        return nabla_b, nabla_w


class ColumnNetAdapter:
    name = "column-net"
    capabilities = {"hidden": ["tanh", "sigmoid"], "outputs": ["identity"], "losses": ["mse"]}

    def build(self, spec, state):
        return _ColumnModel(spec, state)


class _ColumnModel:
    def __init__(self, spec, state):
        self.net = ColumnNet(spec.sizes, spec.hidden[0]["name"])
        self.load_state_dict(state)

    def load_state_dict(self, state):
        for k in range(len(self.net.weights)):
            self.net.weights[k] = np.array(state[f"layers.{k}.weight"], dtype=float)
            self.net.biases[k] = np.array(state[f"layers.{k}.bias"], dtype=float).reshape(-1, 1)

    def forward(self, x):
        return np.hstack([self.net.feedforward(row.reshape(-1, 1)) for row in x]).T

    def loss_and_grads(self, x, y):
        loss, grads = 0.0, {}
        for row, target in zip(x, y):
            a, t = self.net.feedforward(row.reshape(-1, 1)), target.reshape(-1, 1)
            loss += 0.5 * float(np.sum((a - t) ** 2))
            nabla_b, nabla_w = self.net.backprop(row.reshape(-1, 1), t)
            for k, (nb, nw) in enumerate(zip(nabla_b, nabla_w)):
                grads[f"layers.{k}.weight"] = grads.get(f"layers.{k}.weight", 0) + nw
                grads[f"layers.{k}.bias"] = grads.get(f"layers.{k}.bias", 0) + nb.ravel()
        return loss, grads


# -- factories for ``--impl tests.byo.strangers:<factory>`` ------------------------------------------

LAYER_NET_CAPABILITIES = {"hidden": ["tanh", "relu", "gelu", "softmax", "identity"], "outputs": ["identity", "softmax"],
                          "losses": ["mse", "cross_entropy"], "dtypes": ["float64"], "optimizers": [],
                          "hyperparameters": []}


def sum_gradient_and_elementwise_softmax(expose=True):
    """The loss reports a mean but back-propagates a sum, and softmax's derivative is s(1 − s)."""
    impl = LayerNetAdapter("sum-and-s1s", expose=expose, mse_grad=mse_grad_of_a_sum,
                           softmax_backward=softmax_backward_elementwise)
    impl.capabilities = LAYER_NET_CAPABILITIES
    return impl


def gelu_always_tanh(expose=True):
    """GELU is always the tanh approximation (forward and its derivative)."""
    impl = LayerNetAdapter("gelu-tanh", expose=expose, gelu=gelu_tanh, gelu_backward=gelu_tanh_backward)
    impl.capabilities = LAYER_NET_CAPABILITIES
    return impl


def column_net():
    """The textbook network: ½‖a − y‖² per sample, summed over the batch."""
    impl = ColumnNetAdapter()
    impl.capabilities = {**ColumnNetAdapter.capabilities, "dtypes": ["float64"], "optimizers": []}
    return impl
