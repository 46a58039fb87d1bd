"""A learner's own functions, written the way tutorials teach them — with three classic mistakes
left in (``scratchnet-conformance ops --impl examples/ops/learner_ops.py:OPS`` names each one):

* ``softmax_derivative`` is the elementwise ``s * (1 - s)``: the diagonal of the Jacobian only;
* ``cross_entropy_derivative`` forgets the ``1 / N`` that the loss itself has;
* ``sigmoid_derivative`` expects ``x`` but is called with the sigmoid's *output*.

``examples/ops/learner_ops_fixed.py`` is the same file with the three lines corrected.
"""

import numpy as np


def softmax(x):
    exps = np.exp(x - np.max(x, axis=1, keepdims=True))
    return exps / np.sum(exps, axis=1, keepdims=True)


def softmax_derivative(s):
    return s * (1 - s)


def cross_entropy(predictions, targets):
    return -np.sum(targets * np.log(predictions)) / predictions.shape[0]


def cross_entropy_derivative(predictions, targets):
    return -targets / predictions


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_derivative(x):
    return sigmoid(x) * (1 - sigmoid(x))


# the suite's names -> mine (batches are rows; a backward gets z, a = f(z) and g = dL/da)
OPS = {
    "softmax": softmax,
    "softmax_backward": lambda z, a, g: g * softmax_derivative(a),
    "cross_entropy": cross_entropy,
    "cross_entropy_grad": cross_entropy_derivative,
    "sigmoid": sigmoid,
    "sigmoid_backward": lambda z, a, g: g * sigmoid_derivative(a),
}
