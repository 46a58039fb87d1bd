import numpy as np

EPS = 0.0


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_backward(z, a, g):
    return g * a * (1.0 - a)


def relu(z):
    out = z.copy()
    out[out < 0] = 0
    return out


def relu_backward(z, a, g):
    grad = g.copy()
    grad[z <= 0] = 0
    return grad


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def softmax_backward(z, a, g):
    return a * g - a * np.sum(a * g, axis=-1, keepdims=True)


def cross_entropy(p, y):
    return -np.sum(y * np.log(p + EPS)) / p.shape[0]


def cross_entropy_grad(p, y):
    return y / (p + EPS) / p.shape[0]
