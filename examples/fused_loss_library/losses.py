"""Losses: ``loss.forward(y_pred, y_true)`` returns the mean loss of the batch,
``loss.backward()`` its gradient w.r.t. ``y_pred``."""

import numpy as np

from .layers import softmax


class Loss:
    def forward(self, y_pred, y_true):
        raise NotImplementedError

    def backward(self):
        raise NotImplementedError

    def __call__(self, y_pred, y_true):
        return self.forward(y_pred, y_true)


class SoftmaxCrossEntropy(Loss):
    """Softmax and categorical cross-entropy in one, on the *logits* (stable, and the gradient
    is just ``(p - y) / batch``). ``y_true``: one-hot rows or integer labels."""

    def forward(self, logits, y_true):
        if y_true.ndim == 1:
            y_true = np.eye(logits.shape[1])[y_true]
        z = logits - logits.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self.p, self.y = np.exp(log_p), y_true
        return -(y_true * log_p).sum(axis=1).mean()

    def backward(self):
        return (self.p - self.y) / self.y.shape[0]


class MeanSquaredError(Loss):
    def forward(self, y_pred, y_true):
        self.diff = y_pred - y_true
        return np.mean(self.diff ** 2)

    def backward(self):
        return 2.0 * self.diff / self.diff.size


__all__ = ["Loss", "SoftmaxCrossEntropy", "MeanSquaredError", "softmax"]
