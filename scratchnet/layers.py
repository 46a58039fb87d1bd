"""``Dense``: a fully connected layer followed by its activation.

Stored like ``torch.nn.Linear``: ``weight`` has shape ``(out_features, in_features)``,
``bias`` ``(out_features,)``. With inputs as rows ``x`` ``(N, in)``::

    z = x Wᵀ + b                 a = f(z)

and, given ``δ = ∂L/∂z`` ``(N, out)``, backward is::

    ∂L/∂W = δᵀ x   (out, in)     ∂L/∂b = Σ_rows δ   (out,)     ∂L/∂x = δ W   (N, in)

Gradients are written into preallocated buffers (``grad_weight``, ``grad_bias``), overwritten
by every backward pass, never accumulated.
"""

from __future__ import annotations

import numpy as np

from .activations import Activation

__all__ = ["Dense"]


class Dense:
    """One layer ``a = f(x Wᵀ + b)``; caches ``x``, ``z`` and ``a`` of the last forward pass."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, activation: Activation):
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"weight must be (out, in) and bias (out,), got {weight.shape} and {bias.shape}")
        self.weight = np.ascontiguousarray(weight)
        self.bias = np.ascontiguousarray(bias, dtype=weight.dtype)
        self.activation = activation
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self.x = self.z = self.a = None

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``z = x Wᵀ + b``, ``a = f(z)``; returns ``a``."""
        z = np.dot(x, self.weight.T)
        z += self.bias
        self.x, self.z = x, z
        self.a = self.activation.forward(z)
        return self.a

    def backward_from_z(self, delta: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Given ``δ = ∂L/∂z``, fill the parameter gradients and return ``∂L/∂x``."""
        np.dot(delta.T, self.x, out=self.grad_weight)
        # Σ over the batch accumulated in float64 and rounded once: numpy adds the rows of a
        # float32 array one after another (error ~N·ε), torch's vectorised sum is tighter.
        self.grad_bias[...] = delta.sum(axis=0, dtype=np.float64)
        return np.dot(delta, self.weight) if need_input_grad else None

    def backward(self, grad_a: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Given ``∂L/∂a``, apply the activation's VJP, then :meth:`backward_from_z`."""
        delta = self.activation.backward(self.z, self.a, grad_a)
        return self.backward_from_z(delta, need_input_grad)
