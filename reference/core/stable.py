"""The last oracle: the loss and its gradient with respect to the logits, written in torch from
the logits ``z`` in a numerically stable way, in float64.

It is asked where torch's own modular path broke down (a probability within a few ulp of 0 or 1
under a log, NaN from ``0·log 0``, BCE's clamps). It computes the *same function* as torch's
modular path — the loss of the output activation's values ``p`` — but takes every quantity that
rounding destroys in the modular path from the logits instead:

* ``log p`` = ``log_softmax(z)`` / ``logsigmoid(z)``;
* ``q = 1 − p`` and ``log q``: ``logsigmoid(−z)`` for sigmoid; for softmax
  ``log q_i = logsumexp_{j≠i} z_j − logsumexp_j z_j`` (the other classes' mass, never ``1 − p``);
* ``p − y = (1 − y)·p − y·q``.

Cross-entropy ``L = −Σ y' log p / N`` (``y'`` with label smoothing) has no clamps: its gradient is
autograd's through ``log_softmax``/``logsigmoid``, the exact derivative.

Binary cross-entropy is torch's function, clamps included (scratchnet reproduces them in the
unfused pairs): the forward ``ℓ = −[y·max(log p, −100) + (1 − y)·max(log q, −100)]`` and torch's
*backward formula* ``∂ℓ/∂p = (p − y)/max(p·q, 1e-12)`` — which is not the derivative of the clamped
forward where ``log p < −100`` (torch does not zero it there), so it is written out rather than
left to autograd. Chained to the logits without forming ``1 − p``:

* sigmoid: ``∂ℓ/∂z = g·p·q = (p − y)·min(1, p·q/1e-12)``;
* softmax: ``∂ℓ/∂z_i = p_i(g_i − Σ_j g_j p_j) = g_i p_i q_i − p_i Σ_{j≠i} g_j p_j`` — the sum over
  the *other* classes, so the ``g_i p_i ≈ 1/q_i`` of a saturated class is never subtracted from
  itself.

The rest of the network is differentiated by autograd from ``∂L/∂z``. What stays different from a
modular implementation is only that one's rounding of ``p`` (``1 − p`` from a rounded ``p``, a
clamp that rounding switched on): :mod:`~scratchnet_reference.core.compare` adds torch's own
modular distance from this oracle as the noise floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .mapping import dense_target
from .torch_import import torch_module

__all__ = ["STABLE_PAIRS", "stable_loss_and_logit_grad"]

#: (output activation, loss) pairs this oracle writes out.
STABLE_PAIRS = frozenset({("sigmoid", "binary_cross_entropy"), ("softmax", "binary_cross_entropy"),
                          ("sigmoid", "cross_entropy"), ("softmax", "cross_entropy")})

_LOG_CLAMP = -100.0  # torch's clamp of each log in binary_cross_entropy
_BCE_EPS = 1e-12  # torch's lower bound on p(1 − p) in binary_cross_entropy's backward


def _log_p_and_q(output: str, z: Any) -> tuple[Any, Any]:
    """``log p`` and ``log(1 − p)`` of the output activation, from the logits."""
    torch = torch_module()
    F = torch.nn.functional
    if output == "sigmoid":
        return F.logsigmoid(z), F.logsigmoid(-z)
    c = z.shape[1]
    others = z.unsqueeze(1).expand(-1, c, -1).masked_fill(torch.eye(c, dtype=torch.bool, device=z.device),
                                                            float("-inf"))
    total = torch.logsumexp(z, dim=1, keepdim=True)
    return z - total, torch.logsumexp(others, dim=2) - total


def _bce(output: str, z: Any, y: Any, reduction: str) -> tuple[Any, Any]:
    torch = torch_module()
    log_p, log_q = _log_p_and_q(output, z)
    n = z.numel() if reduction == "mean" else 1
    loss = -(y * log_p.clamp(min=_LOG_CLAMP) + (1 - y) * log_q.clamp(min=_LOG_CLAMP)).sum() / n
    p, q = log_p.exp(), log_q.exp()
    p_minus_y = (1 - y) * p - y * q
    if output == "sigmoid":
        return loss, p_minus_y * torch.clamp(p * q / _BCE_EPS, max=1.0) / n
    # softmax: g_j p_j with g = ∂ℓ/∂p, then p_i(g_i q_i − Σ_{j≠i} g_j p_j)
    g_p = p_minus_y * p / torch.clamp(p * q, min=_BCE_EPS)
    others = ~torch.eye(z.shape[1], dtype=torch.bool, device=z.device)
    off = (g_p.unsqueeze(1) * others).sum(dim=2)
    own = p_minus_y * torch.clamp(p * q / _BCE_EPS, max=1.0)
    return loss, (own - p * off) / n


def _cross_entropy(output: str, z: Any, target: Any, smoothing: float, reduction: str) -> tuple[Any, Any]:
    torch = torch_module()
    leaf = z.detach().clone().requires_grad_(True)
    log_p, _ = _log_p_and_q(output, leaf) if output == "softmax" else (torch.nn.functional.logsigmoid(leaf), None)
    y = dense_target(target, z.shape[1], z.dtype, smoothing)
    per_row = -(y * log_p).sum(dim=1)
    loss = per_row.mean() if reduction == "mean" else per_row.sum()
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


def stable_loss_and_logit_grad(output: str, loss: Mapping[str, Any], reduction: str, z: Any,
                               target: Any) -> tuple[Any, Any]:
    """``(L, ∂L/∂z)`` for ``(output, loss)`` in :data:`STABLE_PAIRS`, from the logits ``z``
    (float64 recommended) and the target as :func:`~scratchnet_reference.core.compare.prepare_batch`
    prepares it: labels or dense rows for cross-entropy, dense float rows ``(N, C)`` for binary
    cross-entropy (never labels: BCE is not a class-index loss)."""
    pair = (output, loss["name"])
    if pair not in STABLE_PAIRS:
        raise ValueError(f"no stable form of {output} + {loss['name']}; known: {sorted(STABLE_PAIRS)}")
    z = z.detach()
    if loss["name"] == "binary_cross_entropy":
        if not target.is_floating_point() or tuple(target.shape) != tuple(z.shape):
            raise ValueError(f"binary cross-entropy's target must be float rows of the logits' shape "
                             f"{tuple(z.shape)}, got {target.dtype} of shape {tuple(target.shape)}")
        return _bce(output, z, target.to(z.dtype), reduction)
    return _cross_entropy(output, z, target, loss.get("label_smoothing", 0.0), reduction)
