"""``learner_ops.py`` with its three mistakes corrected: every op agrees with torch."""

import numpy as np


def softmax(x):
    exps = np.exp(x - np.max(x, axis=1, keepdims=True))
    return exps / np.sum(exps, axis=1, keepdims=True)


def softmax_backward(s, g):
    return s * (g - np.sum(g * s, axis=1, keepdims=True))


def cross_entropy(predictions, targets):
    return -np.sum(targets * np.log(predictions)) / predictions.shape[0]


def cross_entropy_derivative(predictions, targets):
    return -targets / predictions / predictions.shape[0]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


OPS = {
    "softmax": softmax,
    "softmax_backward": lambda z, a, g: softmax_backward(a, g),
    "cross_entropy": cross_entropy,
    "cross_entropy_grad": cross_entropy_derivative,
    "sigmoid": sigmoid,
    "sigmoid_backward": lambda z, a, g: g * a * (1 - a),
}
