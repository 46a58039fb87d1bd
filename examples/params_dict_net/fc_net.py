# ruff: noqa: UP004, UP031, I001  (a stranger's code, kept in its own style)
import numpy as np

from .layers import (affine_backward, affine_forward, relu_backward, relu_forward, softmax_loss, tanh_backward,
                     tanh_forward)

NONLINEARITIES = {
    "relu": (relu_forward, relu_backward),
    "tanh": (tanh_forward, tanh_backward),
}


class FullyConnectedNet(object):
    """
    A fully-connected neural network with an arbitrary number of hidden layers,
    a nonlinearity after every hidden layer and a softmax loss:

    {affine - nonlinearity} x (L - 1) - affine - softmax

    Learnable parameters are stored in the self.params dictionary: the first
    layer's weights and biases under the keys 'W1' and 'b1', and so on.
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, nonlinearity="relu",
                 weight_scale=1e-2, reg=0.0, dtype=np.float32, seed=None):
        self.num_layers = 1 + len(hidden_dims)
        self.reg = reg
        self.dtype = dtype
        self.forward_fn, self.backward_fn = NONLINEARITIES[nonlinearity]
        rng = np.random.default_rng(seed)
        dims = [input_dim] + list(hidden_dims) + [num_classes]
        self.params = {}
        for i in range(self.num_layers):
            self.params["W%d" % (i + 1)] = weight_scale * rng.standard_normal((dims[i], dims[i + 1]))
            self.params["b%d" % (i + 1)] = np.zeros(dims[i + 1])
        for k, v in self.params.items():
            self.params[k] = v.astype(dtype)

    def loss(self, X, y=None):
        """
        Compute loss and gradient for a minibatch of data.

        Inputs:
        - X: Array of input data of shape (N, D)
        - y: Array of labels, of shape (N,). y[i] gives the label for X[i].

        Returns:
        If y is None, returns the class scores, of shape (N, C).
        Otherwise, returns a tuple of (loss, grads), grads mapping the names of
        self.params to the gradients of the loss with respect to them.
        """
        X = X.astype(self.dtype)
        caches = []
        out = X
        for i in range(1, self.num_layers):
            out, fc_cache = affine_forward(out, self.params["W%d" % i], self.params["b%d" % i])
            out, nl_cache = self.forward_fn(out)
            caches.append((fc_cache, nl_cache))
        L = self.num_layers
        scores, last_cache = affine_forward(out, self.params["W%d" % L], self.params["b%d" % L])
        if y is None:
            return scores

        grads = {}
        loss, dscores = softmax_loss(scores, y)
        for i in range(1, L + 1):
            loss += 0.5 * self.reg * np.sum(self.params["W%d" % i] ** 2)

        dout, grads["W%d" % L], grads["b%d" % L] = affine_backward(dscores, last_cache)
        grads["W%d" % L] += self.reg * self.params["W%d" % L]
        for i in range(L - 1, 0, -1):
            fc_cache, nl_cache = caches[i - 1]
            dout = self.backward_fn(dout, nl_cache)
            dout, grads["W%d" % i], grads["b%d" % i] = affine_backward(dout, fc_cache)
            grads["W%d" % i] += self.reg * self.params["W%d" % i]
        return loss, grads


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: w -= learning_rate * dw."""
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    w -= config["learning_rate"] * dw
    return w, config
