"""Layers. Every layer keeps its trainable arrays in ``self.params`` and, after ``backward``,
their gradients under the same keys in ``self.grads``. Inputs are batches of rows ``(batch, features)``."""

import numpy as np


class Layer:
    def __init__(self):
        self.params = {}
        self.grads = {}

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        """``dout`` = dL/d(output); returns dL/d(input) and fills ``self.grads``."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Fully connected: ``x @ W + b`` with ``W`` of shape ``(in_features, out_features)``."""

    def __init__(self, in_features, out_features, seed=None):
        super().__init__()
        rng = np.random.default_rng(seed)
        limit = np.sqrt(6.0 / (in_features + out_features))  # glorot uniform
        self.params["W"] = rng.uniform(-limit, limit, size=(in_features, out_features))
        self.params["b"] = np.zeros(out_features)

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T

    def __repr__(self):
        return f"Dense({self.params['W'].shape[0]}, {self.params['W'].shape[1]})"


class ReLU(Layer):
    def forward(self, x):
        self.mask = x >= 0
        return np.where(self.mask, x, 0.0)

    def backward(self, dout):
        return dout * self.mask  # PLANTED: relu'(0) = 1 — the mask x >= 0 lets the gradient through at the kink


class Tanh(Layer):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out ** 2)


class GELU(Layer):
    """Gaussian Error Linear Unit, ``x * Phi(x)`` with ``Phi`` the standard normal CDF
    (Hendrycks & Gimpel, 2016) -- the exact GELU, as in BERT."""

    _c = np.sqrt(2.0 / np.pi)

    def forward(self, x):
        self.x = x
        # PLANTED: the tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³))), not the exact x·Φ(x) promised
        self.t = np.tanh(self._c * (x + 0.044715 * x ** 3))
        return 0.5 * x * (1.0 + self.t)

    def backward(self, dout):
        x, t = self.x, self.t
        dt = (1.0 - t ** 2) * self._c * (1.0 + 3 * 0.044715 * x ** 2)
        return dout * (0.5 * (1.0 + t) + 0.5 * x * dt)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Softmax(Layer):
    """Softmax over the features. For classification do NOT end the model with this layer:
    use ``SoftmaxCrossEntropy``, which takes the logits (and call ``softmax`` on predictions)."""

    def forward(self, x):
        self.out = softmax(x)
        return self.out

    def backward(self, dout):
        s = self.out
        return s * (dout - (dout * s).sum(axis=1, keepdims=True))
