import numpy as np


def sigmoid_forward(x):
    """Computes the forward pass for a layer of sigmoid units.

    Returns a tuple of (out, cache)."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    cache = out
    return out, cache


def sigmoid_backward(dout, cache):
    out = cache
    dx = dout * out * (1 - out)
    return dx


def relu_forward(x):
    out = np.maximum(0, x)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    x = cache
    dx = dout * (x > 0)
    return dx


def softmax_forward(x):
    shifted = x - np.max(x, axis=1, keepdims=True)
    exps = np.exp(shifted)
    out = exps / np.sum(exps, axis=1, keepdims=True)
    return out, out


def softmax_backward(dout, cache):
    s = cache
    dx = s * (dout - np.sum(dout * s, axis=1, keepdims=True))
    return dx


def cross_entropy(probs, y):
    N = probs.shape[0]
    return -np.sum(y * np.log(probs)) / N


def cross_entropy_grad(probs, y):
    N = probs.shape[0]
    return -y / probs / N
