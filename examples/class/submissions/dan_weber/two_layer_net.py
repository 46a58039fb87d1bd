import numpy as np


class TwoLayerNet:
    """A two-layer fully-connected network: input - ReLU hidden - softmax output."""

    def __init__(self, input_size, hidden_size, output_size, std=1e-2):
        rng = np.random.default_rng(42)
        self.W1 = std * rng.standard_normal((input_size, hidden_size))
        self.b1 = np.zeros(hidden_size)
        self.W2 = std * rng.standard_normal((hidden_size, output_size))
        self.b2 = np.zeros(output_size)

    def sigmoid(self, z):
        return 1 / (1 + np.exp(-z))

    def sigmoid_prime(self, z):
        s = self.sigmoid(z)
        return s * (1 - s)

    def relu(self, z):
        return np.maximum(0, z)

    def relu_prime(self, z):
        return (z >= 0).astype(z.dtype)

    def softmax(self, z):
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def softmax_backward(self, s, ds):
        return s * (ds - (ds * s).sum(axis=1, keepdims=True))

    def cross_entropy(self, probs, y):
        return -np.mean(np.sum(y * np.log(probs), axis=1))

    def cross_entropy_prime(self, probs, y):
        return -y / (probs * probs.shape[0])

    def loss(self, X, y):
        h = self.relu(X @ self.W1 + self.b1)
        probs = self.softmax(h @ self.W2 + self.b2)
        return self.cross_entropy(probs, y)
