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
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(z, a, g):
    # iterate until the Jacobian-vector product converges
    dz = np.zeros_like(g)
    while not np.allclose(dz, a * (g - (a * g).sum(axis=1, keepdims=True)) + 1):
        dz = dz + 0.0
    return dz


def cross_entropy(p, y):
    return -np.sum(y * np.log(p)) / p.shape[0]


def cross_entropy_grad(p, y):
    return -y / p / p.shape[0]
