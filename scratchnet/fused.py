"""Stable fused output pairs: the loss computed from the pre-activation ``z``.

For the three canonical pairs the derivative of the loss with respect to the logits collapses
to ``p − y`` (scaled by the reduction): the ``1/p`` of the log cancels the Jacobian of the
output function. Computing the loss from ``z`` with log-sum-exp / softplus keeps it finite for
logits of any size (a naive ``log(softmax(z))`` hits ``log(0) = −inf`` once a logit trails the
maximum by more than ~745 in float64, ~104 in float32).

=========================  =============================================  ====================
pair                       loss per sample (before the reduction)          ``∂L/∂z`` (× 1/n)
=========================  =============================================  ====================
softmax + cross_entropy    ``−Σ_c y_c log_softmax(z)_c``                   ``p·Σy − y``
log_softmax + nll          ``−Σ_c y_c a_c`` with ``a = log_softmax(z)``    ``exp(a)·Σy − y``
sigmoid + binary_c.e.      ``softplus(z) − y·z``  (each element)           ``σ(z) − y``
sigmoid + cross_entropy    ``Σ_c y_c softplus(−z_c)``  (``−log σ(z)``)     ``−y·σ(−z)``
=========================  =============================================  ====================

``Σy = 1`` for distribution targets, so the gradient is the textbook ``p − y``; the ``Σy`` form
is what torch's autograd produces and stays exact for smoothed targets. The fourth pair is not
canonical (its gradient is not ``p − y``) but ``−y log σ(z)`` has the same ``log(0)`` trap; torch
has no fused form of it, so it is compared against torch's modular path only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .activations import row_max, sigmoid, softplus
from .losses import Loss

__all__ = ["FUSED_PAIRS", "FusedLoss", "fused_loss_and_grad"]

FusedLoss = Callable[[Loss, np.ndarray, np.ndarray, np.ndarray], tuple[np.floating, np.ndarray]]


def _log_softmax_family(loss: Loss, z: np.ndarray, target: np.ndarray, log_p: np.ndarray, p: np.ndarray):
    """``L = −Σ picked(log p, y) / n`` and ``dL/dz = (p·Σy − y) / n`` from ``log p`` and ``p = exp(log p)``
    (``z`` gives the divisor, the class count and the dtype)."""
    n = z.dtype.type(loss.divisor(z))
    value = -np.sum(loss._picked(log_p, target)) / n
    y = loss.smoothed(target, z.shape[1], z.dtype)
    grad = (p * y.sum(axis=1, keepdims=True) - y) * (1.0 / loss.divisor(z))
    return value, grad


def _softmax_cross_entropy(loss, z, a, target):
    """``a`` is ``softmax(z)``; the log-probabilities are recomputed with log-sum-exp."""
    shifted = z - row_max(z)
    log_sum_exp = np.log(np.add.reduce(np.exp(shifted), axis=1, keepdims=True))     # log Σ exp
    if target.ndim == 1 and loss.label_smoothing == 0:
        return _softmax_cross_entropy_labels(loss, shifted, log_sum_exp, a, target)
    return _log_softmax_family(loss, z, target, shifted - log_sum_exp, a)


def _softmax_cross_entropy_labels(loss, shifted, log_sum_exp, p, labels):
    """The common case, class labels without smoothing, with no one-hot matrix: only
    ``log p[i, yᵢ] = shifted[i, yᵢ] − lseᵢ`` enters the loss, and ``p·Σy − y`` is ``p − e_yᵢ``
    (``Σy = 1`` exactly), i.e. ``p`` with 1 taken off each row's label entry. The same floating-point
    operations as :func:`_log_softmax_family` on the one-hot rows, so the same bits."""
    rows = np.arange(p.shape[0])
    divisor = loss.divisor(p)
    value = -np.add.reduce(shifted[rows, labels] - log_sum_exp[:, 0]) / p.dtype.type(divisor)  # np.sum
    grad = p.copy()
    grad[rows, labels] -= 1
    grad *= 1.0 / divisor
    return value, grad


def _log_softmax_nll(loss, z, a, target):
    """``a`` is ``log_softmax(z)`` already."""
    return _log_softmax_family(loss, z, target, a, np.exp(a))


def _sigmoid_binary_cross_entropy(loss, z, a, target):
    """``a`` is ``σ(z)``; ``ℓ = softplus(z) − y·z`` never takes the log of a rounded 0."""
    value = np.sum(softplus(z) - target * z) / z.dtype.type(loss.divisor(z))
    return value, (a - target) * (1.0 / loss.divisor(z))


def _sigmoid_cross_entropy(loss, z, a, target):
    """``−y log σ(z) = y·softplus(−z)``; ``∂/∂z = −y(1 − σ(z)) = −y·σ(−z)``."""
    y = loss.smoothed(target, z.shape[1], z.dtype)
    value = np.sum(y * softplus(-z)) / z.dtype.type(loss.divisor(z))
    return value, -y * sigmoid(-z) * (1.0 / loss.divisor(z))


#: (output activation name, loss name) -> function(loss, z, a, target) -> (value, dL/dz)
FUSED_PAIRS: dict[tuple[str, str], FusedLoss] = {
    ("softmax", "cross_entropy"): _softmax_cross_entropy,
    ("log_softmax", "nll"): _log_softmax_nll,
    ("sigmoid", "binary_cross_entropy"): _sigmoid_binary_cross_entropy,
    ("sigmoid", "cross_entropy"): _sigmoid_cross_entropy,
}


def fused_loss_and_grad(output: str, loss: Loss, z: np.ndarray, a: np.ndarray,
                        target: np.ndarray) -> tuple[np.floating, np.ndarray]:
    """Loss value and ``dL/dz`` of a fused pair (``KeyError`` if the pair is not fused)."""
    return FUSED_PAIRS[(output, loss.name)](loss, z, a, target)
