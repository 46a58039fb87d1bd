"""A CS231n-style ``layers.py`` as a student fills it in — ``(out, cache)`` forwards, ``(dout, cache)``
backwards, ``softmax_loss(x, y) -> (loss, dx)`` with class-index labels — with two planted mistakes
(marked ``# PLANTED:``). Checked as it is, no adapter::

    scratchnet-conformance ops --impl examples/ops/layers.py

prints how each function was read (the caches come from the forwards here), then names both mistakes:
``db`` is the mean over the batch where the gradient of ``x·w + b`` sums it, and ``relu'(0) = 1``.
``svm_loss`` is not a loss the suite has: ``SKIP`` leaves it out, and the report says so.
"""

import numpy as np

SKIP = ["svm_loss"]  # the multiclass hinge loss: no torch reference in the suite


def affine_forward(x, w, b):
    """x: (N, d_1, ..., d_k), w: (D, M), b: (M,) -> (out (N, M), cache)"""
    out = x.reshape(x.shape[0], -1).dot(w) + b
    cache = (x, w, b)
    return out, cache


def affine_backward(dout, cache):
    x, w, b = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    db = np.mean(dout, axis=0)  # PLANTED: the mean over the batch; the gradient of x·w + b sums it
    return dx, dw, db


def relu_forward(x):
    out = np.maximum(0, x)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    x = cache
    dx = dout * (x >= 0)  # PLANTED: relu'(0) taken as 1 (torch's subgradient at 0 is 0)
    return dx


def softmax_loss(x, y):
    shifted_logits = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted_logits), axis=1, keepdims=True)
    log_probs = shifted_logits - np.log(Z)
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx


def svm_loss(x, y):
    N = x.shape[0]
    correct_class_scores = x[np.arange(N), y]
    margins = np.maximum(0, x - correct_class_scores[:, np.newaxis] + 1.0)
    margins[np.arange(N), y] = 0
    loss = np.sum(margins) / N
    num_pos = np.sum(margins > 0, axis=1)
    dx = np.zeros_like(x)
    dx[margins > 0] = 1
    dx[np.arange(N), y] -= num_pos
    dx /= N
    return loss, dx
