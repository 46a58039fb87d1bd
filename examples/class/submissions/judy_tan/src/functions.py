import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_prime(x):
    return sigmoid(x) * (1 - sigmoid(x))


def sigmoid_backward(z, a, g):
    local = sigmoid_prime(z)
    return g * local * sigmoid_prime(z)


def relu(x):
    return np.maximum(x, 0)


def relu_backward(z, a, g):
    return g * (z > 0)


def softmax(x):
    x = x - x.max(1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(1, keepdims=True)


def softmax_backward(z, a, g):
    return a * (g - (g * a).sum(1, keepdims=True))


def cross_entropy(p, y):
    return -np.sum(y * np.log(p)) / y.shape[0]


def cross_entropy_grad(p, y):
    return -y / p / y.shape[0]
