import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_forward(x):
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout, cache):
    # cache holds the sigmoid's output
    return dout * sigmoid(cache) * (1 - sigmoid(cache))


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    x = cache
    dx = dout.copy()
    dx[x < 0] = 0
    return dx


def softmax_forward(x):
    probs = np.exp(x - np.max(x, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    return probs, probs


def softmax_backward(dout, cache):
    p = cache
    return p * (dout - np.sum(dout * p, axis=1, keepdims=True))


def cross_entropy(probs, y):
    return -np.sum(y * np.log(probs)) / probs.shape[0]


def cross_entropy_grad(probs, y):
    return -y / probs / probs.shape[0]
