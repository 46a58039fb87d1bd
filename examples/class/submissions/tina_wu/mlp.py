"""My MLP for assignment 2 (sigmoid hidden layers, softmax + cross-entropy)."""
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    s = sigmoid(z)
    return s * (1.0 - s)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(p, y):
    return -np.sum(y * np.log(p)) / p.shape[0]


def cross_entropy_grad(p, y):
    return -y / p / p.shape[0]


class MLP:
    def __init__(self, sizes=(4, 5, 3)):
        self.sizes = list(sizes)
        rng = np.random.default_rng(0)
        self.weights = [rng.standard_normal((m, n)) * 0.1 for n, m in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros(m) for m in sizes[1:]]

    def forward(self, X):
        self.zs, self.activations = [], [X]
        a = X
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ W.T + b
            a = softmax(z) if k == len(self.weights) - 1 else sigmoid(z)
            self.zs.append(z)
            self.activations.append(a)
        return a

    def backward(self, X, Y):
        """Y one-hot. Returns the gradients of the mean cross-entropy."""
        p = self.forward(X)
        delta = (p - Y) / X.shape[0]
        dWs, dbs = [], []
        for k in reversed(range(len(self.weights))):
            dWs.insert(0, delta.T @ self.activations[k])
            dbs.insert(0, delta.sum(axis=0))
            if k > 0:
                # sigmoid'(z) of the layer below
                delta = (delta @ self.weights[k]) * sigmoid_prime(self.activations[k])
        return cross_entropy(p, Y), dWs, dbs
