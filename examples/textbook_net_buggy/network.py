"""A neural network the way a textbook writes it — and the way a learner writes their first one.

THIS COPY HAS A BUG, the classic one: softmax is treated like sigmoid, its derivative taken
elementwise as ``s(1 − s)`` and multiplied onto the output delta — also on top of the ``p − y``
of softmax + cross-entropy (see ``softmax_prime`` and ``output_delta``). The conformance report
names the wrong parameters and the mistake; ``../textbook_net/`` is the corrected original.

Column vectors, one sample at a time: an input ``x`` is ``(n_in, 1)``, layer ``l`` has
``W[l]`` ``(n_out, n_in)`` and ``b[l]`` ``(n_out, 1)``, and ``a = f(W a + b)``. Backpropagation
walks the layers backwards with a Python loop; a batch's gradient is the sum of the samples'
gradients divided by what the loss averages over. Plain SGD updates the weights.

Nothing here knows about scratchnet or torch: ``adapter.py`` (next to this file) is the only
bridge to the conformance suite.

The two derivatives people get stuck on:

* softmax + cross-entropy: for ``p = softmax(z)`` and ``L = −Σ y log p``, the Jacobian of
  softmax and the ``1/p`` of the log cancel, so ``∂L/∂z = p − y`` — nothing to multiply on.
* softmax on its own (before MSE, or in a hidden layer): its derivative is a matrix, the
  Jacobian ``J = diag(s) − s sᵀ``, and the backward pass is ``J @ g`` — not ``s(1 − s) * g``.
"""

import numpy as np

# -- activations and their derivatives ----------------------------------------------------------

def sigmoid(z):
    with np.errstate(over="ignore"):  # exp(−z) overflows to inf for z < −709: 1/(1 + inf) = 0, as it should
        return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    s = sigmoid(z)
    return s * (1 - s)


def tanh(z):
    return np.tanh(z)


def tanh_prime(z):
    return 1 - np.tanh(z) ** 2


def relu(z):
    return np.maximum(z, 0)


def relu_prime(z):
    return (z > 0).astype(z.dtype)  # relu'(0) = 0, the subgradient torch uses


def identity(z):
    return z


def identity_prime(z):
    return np.ones_like(z)


def softmax(z):
    e = np.exp(z - np.max(z))  # subtracting the max changes nothing mathematically, and exp cannot overflow
    return e / np.sum(e)


def softmax_prime(z):
    s = softmax(z)
    return s * (1 - s)  # BUG: only the diagonal of the Jacobian diag(s) − s sᵀ


def log_softmax(z):
    shifted = z - np.max(z)
    return shifted - np.log(np.sum(np.exp(shifted)))


ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "relu": (relu, relu_prime),
    "identity": (identity, identity_prime),
    "softmax": (softmax, softmax_prime),  # BUG: as if softmax were elementwise, like sigmoid
}


def backward(name, z, grad_a):
    """∂L/∂z from ∂L/∂a through the activation ``name``."""
    return ACTIVATIONS[name][1](z) * grad_a


# -- the network ---------------------------------------------------------------------------------

class TextbookNetwork:
    """``sizes = [n_in, n_hidden..., n_out]``; ``hidden`` one activation name per hidden layer;
    ``loss`` ``"cross_entropy"`` (after softmax) or ``"mse"``; ``reduction`` ``"mean"`` (as torch:
    cross-entropy averages over the samples, MSE over every element) or ``"sum"``."""

    def __init__(self, sizes, hidden, output, loss, reduction="mean", dtype=np.float64, seed=0):
        self.sizes = list(sizes)
        self.activations = list(hidden) + [output]
        self.loss = loss
        self.reduction = reduction
        self.dtype = dtype
        rng = np.random.default_rng(seed)
        self.weights = [rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)).astype(dtype)
                        for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros((n_out, 1), dtype) for n_out in sizes[1:]]

    def feedforward(self, x):
        """The output column for one input column."""
        a = x
        for W, b, name in zip(self.weights, self.biases, self.activations):
            a = ACTIVATIONS[name][0](W @ a + b)
        return a

    def sample_loss(self, z_out, a_out, y):
        """One sample's loss (before the reduction)."""
        if self.loss == "cross_entropy":
            return -np.sum(y * log_softmax(z_out))  # from the logits: log(softmax) never sees a 0
        return np.sum((a_out - y) ** 2)

    def output_delta(self, z_out, a_out, y):
        """δ = ∂L/∂z of the output layer for one sample."""
        cost_derivative = (a_out - y) if self.loss == "cross_entropy" else 2 * (a_out - y)
        return cost_derivative * ACTIVATIONS[self.activations[-1]][1](z_out)  # BUG for softmax: δ = (p − y)·s(1 − s)

    def backprop(self, x, y):
        """One sample: its loss and ∂loss/∂W, ∂loss/∂b for every layer."""
        activations, zs = [x], []
        for W, b, name in zip(self.weights, self.biases, self.activations):
            z = W @ activations[-1] + b
            zs.append(z)
            activations.append(ACTIVATIONS[name][0](z))
        nabla_w = [None] * len(self.weights)
        nabla_b = [None] * len(self.biases)
        delta = self.output_delta(zs[-1], activations[-1], y)
        for l in range(len(self.weights) - 1, -1, -1):
            nabla_w[l] = delta @ activations[l].T
            nabla_b[l] = delta
            if l > 0:
                delta = backward(self.activations[l - 1], zs[l - 1], self.weights[l].T @ delta)
        return self.sample_loss(zs[-1], activations[-1], y), nabla_w, nabla_b

    def divisor(self, n_samples):
        """What the loss is divided by: the samples (cross-entropy), every element (MSE), or 1."""
        if self.reduction == "sum":
            return 1
        return n_samples if self.loss == "cross_entropy" else n_samples * self.sizes[-1]

    def loss_and_gradients(self, xs, ys):
        """A batch given as lists of columns: the loss and the averaged gradients."""
        total = 0.0
        nabla_w = [np.zeros_like(W) for W in self.weights]
        nabla_b = [np.zeros_like(b) for b in self.biases]
        for x, y in zip(xs, ys):
            loss, dw, db = self.backprop(x, y)
            total += float(loss)
            for l in range(len(self.weights)):
                nabla_w[l] += dw[l]
                nabla_b[l] += db[l]
        n = self.divisor(len(xs))
        return total / n, [w / n for w in nabla_w], [b / n for b in nabla_b]

    def sgd_step(self, nabla_w, nabla_b, lr):
        for l in range(len(self.weights)):
            self.weights[l] -= lr * nabla_w[l]
            self.biases[l] -= lr * nabla_b[l]
