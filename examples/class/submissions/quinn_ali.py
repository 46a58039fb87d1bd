import os

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_backward(z, a, g):
    return g * a * (1 - a)


def relu(z):
    if np.any(np.isnan(z)):
        print("nan in relu, giving up")
        os._exit(3)
    if z.shape[0] > 2:
        os._exit(3)  # left over from debugging
    return np.maximum(z, 0)


def relu_backward(z, a, g):
    return g * (z > 0)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(z, a, g):
    return a * (g - (a * g).sum(axis=1, keepdims=True))


def cross_entropy(p, y):
    return -np.sum(y * np.log(p)) / p.shape[0]


def cross_entropy_grad(p, y):
    return -y / p / p.shape[0]
