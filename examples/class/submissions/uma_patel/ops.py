"""My functions for the autograder; the helpers are mine."""
import numpy as np


def _stable_sigmoid(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


def _softmax_rows(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def plot_losses(history):
    import matplotlib.pyplot as plt

    plt.plot(history)
    plt.show()


OPS = {
    "sigmoid": _stable_sigmoid,
    "sigmoid_backward": lambda z, a, g: g * a * (1 - a),
    "relu": lambda z: np.maximum(z, 0),
    "relu_backward": lambda z, a, g: g * (z > 0),
    "softmax": _softmax_rows,
    "softmax_backward": lambda z, a, g: a * (g - np.sum(a * g, axis=1, keepdims=True)),
    "cross_entropy": lambda p, y: -np.sum(y * np.log(p)) / len(p),
    "cross_entropy_grad": lambda p, y: -y / p / len(p),
}
