import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_backward(z, a, g):
    return g * a * (1 - a)


def relu(z):
    return np.maximum(z, 0)


def relu_backward(z, a, g):
    return g * (z > 0)


def softmax(z):
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def softmax_backward(z, a, g):
    return a * (g - np.sum(g * a, axis=1, keepdims=True))


def cross_entropy(p, y):
    return -np.sum(y * np.log(p)) / p.shape[0]


def cross_entropy_grad(p, y):
    # the famous p - y
    return (p - y) / p.shape[0]
